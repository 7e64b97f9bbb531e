/**
 * Several `mlops serve` workers behind one port (node:cluster): the primary
 * forks the workers (each re-runs the same command and serves the model on
 * its own, with its own copy of it) and does no HTTP itself; cluster's
 * round-robin shares the port, and a `--port 0` is the same free port in
 * every worker. The first worker binds the port alone; the others are forked
 * once it listens (two first binds at once can leave a worker waiting on its
 * listen forever when the port is taken). Over IPC the primary says when
 * every worker has loaded the model (the pod is ready only then) and sums
 * every worker's counters for any worker's /metrics; it drains them all on
 * SIGTERM by passing the signal on. A worker that dies is
 * not restarted: the primary drains the others and exits non-zero, and the
 * container's restart policy starts the pod's server afresh.
 */
import cluster, {type Worker} from 'node:cluster'

import {type Logger} from '../cli/log.js'
import {type ExitCodeName, MlopsError} from '../errors.js'
import {API_ENV, LOG_EVENTS} from '../pod/contract.js'
import {type Counters, sumCounters} from './metrics.js'

/** What a worker says to the primary. */
type WorkerMessage =
  | {type: 'counters'; id: number; counters: Counters}
  | {type: 'failed'; error: ReportedFailure}
  | {type: 'hello'}
  | {type: 'loaded'; fields: Record<string, unknown>}
  | {type: 'metrics'; id: number}

/** What the primary says to a worker. */
type PrimaryMessage = {type: 'all-loaded'} | {type: 'collect'; id: number} | {type: 'metrics'; id: number; counters: Counters}

export interface ReportedFailure {
  code: ExitCodeName
  message: string
  suggestion?: string
}

/** A worker's failure, raised again in the primary with the worker's exit code and message. */
export class WorkerError extends MlopsError {
  constructor(
    readonly code: ExitCodeName,
    message: string,
    options: {suggestion?: string} = {},
  ) {
    super(message, options)
  }
}

export interface PoolOptions {
  workers: number
  /** The address the workers listen on, for the URL the primary logs. */
  host: string
  modelPath: string
  log: Logger
  /** Settles with the signal that stops the pod. */
  stop: Promise<string>
}

/** The primary: forks the workers and coordinates them until they have all exited. */
export async function runPool(options: PoolOptions): Promise<{url: string; stoppedBy: string}> {
  // A worker's stdout would carry its own result (--json): the primary's is the pod's.
  cluster.setupPrimary({stdio: ['ignore', 'ignore', 'inherit', 'ipc']})
  const started = Date.now()
  const {log} = options
  let url = ''
  let stoppedBy = ''
  let stopping = false
  let failure: WorkerError | undefined
  const loaded = new Set<number>()
  /** Workers listening for the primary's messages (one still starting would drop them). */
  const joined = new Set<number>()
  let forked = 0
  const reported = new Set<number>()
  let exited = 0
  const collections = new Map<number, {waiting: Set<number>; parts: Counters[]; requester: Worker; requestId: number}>()
  let nextCollection = 0

  const connected = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected())
  const send = (worker: Worker, message: PrimaryMessage) => {
    if (worker.isConnected()) worker.send(message)
  }

  // A signal, not a message: a worker still starting has no listener yet, and dies of it at once.
  const stopAll = () => {
    if (stopping) return
    stopping = true
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM')
  }

  const answerIfComplete = (id: number) => {
    const collection = collections.get(id)
    if (!collection || collection.waiting.size > 0) return
    collections.delete(id)
    send(collection.requester, {type: 'metrics', id: collection.requestId, counters: sumCounters(collection.parts)})
  }

  return new Promise((resolve, reject) => {
    void options.stop.then(signal => {
      if (stopping) return
      stoppedBy = signal
      log('info', 'shutting down: finishing in-flight requests', {signal, workers: options.workers})
      stopAll()
    })

    const fork = () => {
      forked++
      const worker = cluster.fork({[API_ENV.workers]: String(options.workers)})
      worker.on('listening', address => {
        if (url) return
        url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${address.port}`
        log('info', LOG_EVENTS.listening, {url, model: options.modelPath, workers: options.workers})
        if (!stopping) for (let i = 1; i < options.workers; i++) fork()
      })

      worker.on('message', (message: WorkerMessage) => {
        switch (message.type) {
          case 'hello': {
            joined.add(worker.id)
            return
          }

          case 'loaded': {
            loaded.add(worker.id)
            if (loaded.size < options.workers) return
            for (const w of connected()) send(w, {type: 'all-loaded'})
            log('info', 'ready', {...message.fields, workers: options.workers, seconds: (Date.now() - started) / 1000})
            return
          }

          case 'failed': {
            reported.add(worker.id)
            failure ??= new WorkerError(message.error.code, message.error.message, {suggestion: message.error.suggestion})
            stopAll()
            return
          }

          case 'metrics': {
            const id = nextCollection++
            const asked = connected().filter(w => joined.has(w.id))
            collections.set(id, {waiting: new Set(asked.map(w => w.id)), parts: [], requester: worker, requestId: message.id})
            for (const w of asked) send(w, {type: 'collect', id})
            return
          }

          case 'counters': {
            const collection = collections.get(message.id)
            if (!collection) return
            collection.parts.push(message.counters)
            collection.waiting.delete(worker.id)
            answerIfComplete(message.id)
          }
        }
      })

      // A worker's last messages (its 'failed' report) can still be in the channel when its exit is
      // seen: judged before them, a worker that reported exit 8 read as one that died (exit 1). The
      // channel closes only after every message in it was read, so the exit is judged once it has.
      worker.on('exit', (code, signal) => {
        if (worker.isConnected()) worker.once('disconnect', () => exitedWorker(code, signal))
        else exitedWorker(code, signal)
      })

      const exitedWorker = (code: number, signal: string) => {
        exited++
        for (const [id, collection] of collections) {
          collection.waiting.delete(worker.id)
          answerIfComplete(id)
        }

        // Exit 0 is a worker that stopped on a signal of its own (Ctrl-C reaches the whole process group);
        // SIGTERM while stopping, one that was still starting.
        const stoppedHere = stopping && signal === 'SIGTERM'
        if (code !== 0 && !stoppedHere && !reported.has(worker.id)) {
          log('error', 'worker exited', {worker: worker.id, pid: worker.process.pid, code, signal})
          failure ??= new WorkerError(
            'UNEXPECTED',
            `serve worker ${worker.id} (pid ${worker.process.pid}) exited ${signal ? `on ${signal}` : `with code ${code}`}`,
            {
              suggestion:
                'the container restarts; a signal such as SIGKILL is often the memory limit: see the memory per worker in docs/serve.md (Workers)',
            },
          )
        }

        stopAll()
        if (exited < forked) return
        if (failure) reject(failure)
        else resolve({url, stoppedBy})
      }
    }

    fork()
  })
}

/** In a worker: tells the primary why this worker fails (the primary says it, once); settles once the message is out. */
export async function reportFailure(error: ReportedFailure): Promise<void> {
  if (!process.connected) return
  await new Promise<void>(resolve => {
    process.send!({type: 'failed', error} satisfies WorkerMessage, undefined, {}, () => resolve())
  })
}

/** A worker's side of the pool: readiness of the whole pod, the pod's counters, and the primary's shutdown. */
export class PoolLink {
  /** Whether every worker has loaded the model. */
  allLoaded = false
  readonly id = cluster.worker?.id ?? 0
  private counters: () => Counters = () => ({ready: false, requests: [], latency: []})
  private readonly pending = new Map<number, (counters: Counters) => void>()
  private nextId = 0

  constructor() {
    process.on('message', this.onMessage)
    this.send({type: 'hello'})
  }

  /** Where this worker's own counters come from (its server, once it runs). */
  countersFrom(source: () => Counters): void {
    this.counters = source
  }

  /** The pod's counters: every worker's, this one's included, summed by the primary. */
  async podCounters(): Promise<Counters> {
    const id = this.nextId++
    return new Promise(resolve => {
      this.pending.set(id, resolve)
      this.send({type: 'metrics', id})
    })
  }

  loaded(fields: Record<string, unknown>): void {
    this.send({type: 'loaded', fields})
  }

  /** Lets the process exit: the channel to the primary holds it open. */
  close(): void {
    process.off('message', this.onMessage)
    cluster.worker?.disconnect()
  }

  private readonly onMessage = (message: PrimaryMessage) => {
    switch (message.type) {
      case 'all-loaded': {
        this.allLoaded = true
        return
      }

      case 'collect': {
        this.send({type: 'counters', id: message.id, counters: this.counters()})
        return
      }

      case 'metrics': {
        this.pending.get(message.id)?.(message.counters)
        this.pending.delete(message.id)
      }
    }
  }

  private send(message: WorkerMessage): void {
    if (process.connected) process.send!(message)
  }
}
