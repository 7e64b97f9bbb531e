/**
 * The onnxruntime side of the model server, on its own thread: creating a
 * session blocks its thread for as long as onnxruntime takes to load and
 * optimize the model (seconds for large graphs), and so does each run. Here
 * that never stalls the HTTP thread, which keeps answering /health and
 * /ready (503) during the load and parses requests while a batch runs.
 */
import {InferenceSession, Tensor, env} from 'onnxruntime-node'
import {parentPort, workerData} from 'node:worker_threads'

import type {EngineReply, EngineRequest, WireTensor} from './engine.js'

const port = parentPort!
let session: InferenceSession

try {
  const model = workerData.model as Uint8Array
  // workerData would keep the model's bytes alive for the thread's life: onnxruntime keeps its own copy.
  workerData.model = undefined
  session = await InferenceSession.create(model, {
    // One thread per run by default: small models gain nothing from intra-op threads and lose to
    // their hand-offs; a large model's operators may run faster split over a few (--intra-op-threads).
    intraOpNumThreads: workerData.intraOpThreads as number,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Errors only: the server's own log lines stay the only ones on stderr.
    logSeverityLevel: 3,
  })
  port.postMessage({type: 'loaded', runtime: env.versions.common} satisfies EngineReply)
} catch (error) {
  port.postMessage({type: 'load-failed', runtime: env.versions.common, message: (error as Error).message} satisfies EngineReply)
}

// Every failure is answered as run-failed inside run(), so the detached promise never rejects.
port.on('message', (request: EngineRequest) => void run(request))

async function run(request: EngineRequest): Promise<void> {
  try {
    const feeds = {
      [request.input.name]: new Tensor(request.input.type as 'float32', request.input.data as Float32Array, request.input.dims),
    }
    const results = await session.run(feeds, request.outputs)
    const outputs: Record<string, WireTensor> = {}
    const transfer: ArrayBuffer[] = []
    for (const [name, tensor] of Object.entries(results)) {
      outputs[name] = {type: tensor.type, dims: tensor.dims.map(Number), data: tensor.data as WireTensor['data']}
      if (ArrayBuffer.isView(tensor.data)) transfer.push(tensor.data.buffer as ArrayBuffer)
    }

    port.postMessage({type: 'result', id: request.id, outputs} satisfies EngineReply, transfer)
  } catch (error) {
    port.postMessage({type: 'run-failed', id: request.id, message: (error as Error).message} satisfies EngineReply)
  }
}
