import type {Worker} from 'node:worker_threads'

import {disableRuntimeTelemetry} from '../onnx/ort-env.js'
import type {TypedArray} from './tensors.js'
import {startWorker} from '../util/worker.js'

/** A tensor as it crosses between the HTTP thread and the engine thread. */
export interface WireTensor {
  type: string
  dims: number[]
  data: TypedArray | string[] | boolean[]
}

export type EngineRequest = {id: number; input: WireTensor & {name: string}; outputs: string[]}
export type EngineReply =
  | {type: 'load-failed'; runtime: string; message: string}
  | {type: 'loaded'; runtime: string}
  | {type: 'result'; id: number; outputs: Record<string, WireTensor>}
  | {type: 'run-failed'; id: number; message: string}

export class EngineLoadError extends Error {
  constructor(
    readonly runtime: string,
    message: string,
  ) {
    super(message)
  }
}

/** onnxruntime on a worker thread (see engine-worker.ts): load once, then run batches. */
export class Engine {
  private readonly pending = new Map<number, {resolve: (outputs: Record<string, WireTensor>) => void; reject: (error: Error) => void}>()
  private nextId = 0

  private constructor(
    private readonly worker: Worker,
    readonly runtime: string,
  ) {
    worker.on('message', (reply: EngineReply) => {
      if (reply.type !== 'result' && reply.type !== 'run-failed') return
      const waiter = this.pending.get(reply.id)
      this.pending.delete(reply.id)
      if (reply.type === 'result') waiter?.resolve(reply.outputs)
      else waiter?.reject(new Error(reply.message))
    })
    worker.on('error', error => this.failAll(error))
    worker.on('exit', code => this.failAll(new Error(`the onnxruntime thread exited (code ${code})`)))
  }

  /**
   * Takes the model's bytes: the Buffer passed in is detached (moved to the engine's thread).
   * `intraOpThreads`: onnxruntime's threads per run (default 1).
   */
  static async start(model: Buffer, options: {intraOpThreads?: number} = {}): Promise<Engine> {
    disableRuntimeTelemetry()
    // Hand the bytes over without a copy when the Buffer owns its memory (a model file read whole,
    // the large case): a copy would double the peak memory of loading a 1 GiB model. The caller's
    // Buffer is unusable afterwards.
    const bytes =
      model.byteOffset === 0 && model.byteLength === model.buffer.byteLength ? new Uint8Array(model.buffer) : new Uint8Array(model)
    // The build emits the worker as an entry point of its own (src/util/worker.ts).
    const worker = startWorker('serve/engine-worker', {
      workerData: {model: bytes, intraOpThreads: options.intraOpThreads ?? 1},
      transferList: [bytes.buffer as ArrayBuffer],
    })
    // The thread never holds the process open: a server stopped while the model loads exits at once.
    worker.unref()
    const first = await new Promise<EngineReply>((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
    })
    if (first.type !== 'loaded') {
      await worker.terminate()
      throw new EngineLoadError(
        first.type === 'load-failed' ? first.runtime : 'unknown',
        first.type === 'load-failed' ? first.message : 'unexpected reply',
      )
    }

    return new Engine(worker, first.runtime)
  }

  async run(input: WireTensor & {name: string}, outputs: string[]): Promise<Record<string, WireTensor>> {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, {resolve, reject})
      const transfer = ArrayBuffer.isView(input.data) ? [input.data.buffer as ArrayBuffer] : []
      this.worker.postMessage({id, input, outputs} satisfies EngineRequest, transfer)
    })
  }

  async close(): Promise<void> {
    await this.worker.terminate()
  }

  private failAll(error: Error): void {
    for (const waiter of this.pending.values()) waiter.reject(error)
    this.pending.clear()
  }
}
