import {Flags} from '@oclif/core'
import cluster from 'node:cluster'
import {readFileSync, statSync} from 'node:fs'
import {availableParallelism} from 'node:os'
import {basename, extname} from 'node:path'

import {BaseCommand, describeError} from '../cli/base-command.js'
import {type Logger, createLogger, logFormatFlag, resolveLogFormat} from '../cli/log.js'
import {UsageError} from '../errors.js'
import {API_ENV, LOG_EVENTS} from '../pod/contract.js'
import {containerCpuQuota, containerMemoryLimit, defaultWorkerCount} from '../runtime/limits.js'
import {type ModelSource, checkModel, prepareModel} from '../runtime/model.js'
import {PoolLink, reportFailure, runPool} from '../runtime/pool.js'
import {startServer} from '../runtime/server.js'

export interface ServeResult {
  url: string
  name: string
  sha256: string
  stoppedBy: string
}

export default class Serve extends BaseCommand<typeof Serve> {
  static summary = 'Serve an ONNX model over HTTP: the process the API image runs.'

  static description = [
    `Checks the model file before listening (a missing, unreadable or invalid model exits with its exit code: there is no`,
    `fallback model), listens, loads the model into ONNX Runtime and runs one warm-up inference; /ready answers 200 only`,
    `then.`,
    `Speaks the original model-load API (/health, /metadata, /label, /predict, /predict/label, /predict/test, /predict/test/label), the Open Inference Protocol (/v2/...) and /metrics (Prometheus).`,
    `SIGTERM finishes in-flight requests, then exits 0. Logs are JSON lines on stderr unless on a terminal.`,
    `With --workers N (default: the container's CPU quota), N processes share the port and /metrics and /ready speak for`,
    `all of them; each worker loads its own copy of the model, so size the memory limit at about`,
    `workers × (2 × the model file + 200 MiB). A worker that dies stops the others and exits non-zero (the container restarts).`,
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %> --model model.onnx --labels labels.json',
    'MODEL_FILEPATH=/workdir/model.onnx PORT=8000 <%= config.bin %> <%= command.id %>',
    "<%= config.bin %> <%= command.id %> --model iris.onnx --name iris --model-version 3 --sample '[5.1, 3.5, 1.4, 0.2]'",
    'MLOPS_WORKERS=4 <%= config.bin %> <%= command.id %> --model model.onnx',
  ]

  static flags = {
    model: Flags.string({summary: 'Model file (ONNX).', env: API_ENV.model, required: true}),
    labels: Flags.string({summary: 'Labels file: {"0": "setosa", ...} or ["setosa", ...].', env: API_ENV.labels}),
    port: Flags.integer({summary: 'Port to listen on (0: any free port).', env: API_ENV.port, default: 8000, min: 0, max: 65_535}),
    host: Flags.string({summary: 'Address to listen on.', env: API_ENV.host, default: '0.0.0.0'}),
    name: Flags.string({summary: 'Model name in metrics and the v2 API (default: the file name).', env: API_ENV.name}),
    'model-version': Flags.string({summary: 'Model version in metrics and the v2 API.', env: API_ENV.version}),
    sample: Flags.string({
      summary: 'Sample input row as JSON, or @FILE, for /metadata, /predict/test and the warm-up (default: zeros).',
      env: 'MODEL_SAMPLE',
    }),
    'label-from': Flags.string({
      summary:
        "Which label a classifier answers: output (the model's own label output, when it has one) or argmax (the class of the highest probability, as the original model-load server).",
      env: 'MLOPS_LABEL_FROM',
      options: ['output', 'argmax'],
      default: 'output',
    }),
    workers: Flags.integer({
      summary:
        'Processes sharing the port, each with its own copy of the model in memory (default: the CPU quota rounded up, else the cores; at most what the memory limit holds at 2 × model + 200 MiB).',
      env: API_ENV.workers,
      min: 1,
      max: 1024,
    }),
    'intra-op-threads': Flags.integer({
      summary:
        'ONNX Runtime threads per inference (intraOpNumThreads): helps only large models; for small ones the hand-offs cost more than they save.',
      env: 'MLOPS_INTRA_OP_THREADS',
      default: 1,
      min: 1,
      max: 1024,
    }),
    'max-inflight-bytes': Flags.integer({
      summary:
        'Request-body bytes each worker handles at once; more get 503 with Retry-After: 1 (default: from the memory limit over the workers, 1/40 of each share above 200 MiB; 32 MiB without one).',
      env: 'MLOPS_MAX_INFLIGHT_BYTES',
      min: 1,
    }),
    'max-body-bytes': Flags.integer({
      summary: 'Largest request body; larger ones get 413.',
      env: 'MLOPS_MAX_BODY_BYTES',
      default: 1024 * 1024,
      min: 1,
    }),
    sha256: Flags.string({
      summary: 'Refuse to serve unless the model file has this sha256 (64 hex); deploy pins it for image volumes.',
      env: API_ENV.sha256,
    }),
    'log-format': logFormatFlag,
  }

  protected failureLog(): {log: Logger; msg: string} | undefined {
    // Flags may not have parsed (one way to fail): the environment still says which format.
    const format = resolveLogFormat((this.flags ?? {})['log-format'] ?? process.env.MLOPS_LOG_FORMAT)
    return format === 'json' ? {log: createLogger('json', 'serve'), msg: LOG_EVENTS.serveFailed} : undefined
  }

  async run(): Promise<ServeResult> {
    const {flags} = this
    // Forked by a primary (several workers): this process is one of them.
    const link = cluster.isWorker ? new PoolLink() : undefined
    const format = createLogger(resolveLogFormat(flags['log-format']), 'serve')
    const log: Logger = link ? (level, msg, fields) => format(level, msg, {worker: link.id, ...fields}) : format
    // Listened for from the start: a pod stopped while its model is read or loaded (a scale-down,
    // a rollout) exits 0 at once, not after the load.
    const stop = new Promise<string>(resolve => {
      for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve(signal))
    })
    const name = flags.name ?? basename(flags.model, extname(flags.model))
    const stopped = async (signal: string, url = '') => {
      log('info', 'stopped while loading the model', {signal})
      return {url, name, sha256: '', stoppedBy: signal}
    }

    const source: ModelSource = {
      modelPath: flags.model,
      labelsPath: flags.labels,
      name,
      version: flags['model-version'],
      sample: flags.sample === undefined ? undefined : parseSample(flags.sample),
      labelFrom: flags['label-from'] as 'argmax' | 'output',
      expectedSha256: expectedSha256(flags.sha256),
    }
    const workers =
      flags.workers ??
      defaultWorkerCount({
        cpuQuota: containerCpuQuota(),
        cores: availableParallelism(),
        memoryLimit: containerMemoryLimit(),
        modelBytes: fileSize(flags.model),
      })
    log('info', 'reading the model', {model: flags.model})
    if (!link && workers > 1) {
      // The primary checks the model as one server would (same failures, before anything listens), keeps none of it, and forks.
      const checked = await Promise.race([checkModel(source), stop])
      if (typeof checked === 'string') return stopped(checked)
      const {url, stoppedBy} = await runPool({workers, host: flags.host, modelPath: flags.model, log, stop})
      log('info', 'stopped')
      return {url, name: checked.name, sha256: checked.sha256, stoppedBy}
    }

    const prepared = await Promise.race([prepareModel(source), stop])
    if (typeof prepared === 'string') return stopped(prepared)
    const server = await startServer(prepared, {
      host: flags.host,
      port: flags.port,
      bodyLimit: flags['max-body-bytes'],
      inFlightBytes: flags['max-inflight-bytes'],
      intraOpThreads: flags['intra-op-threads'],
      pool: link && {link, workers},
      log,
    }).catch(error => {
      if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE')
        throw new UsageError(`port ${flags.port} on ${flags.host} is already in use`, {suggestion: 'pass another --port (or PORT)'})
      throw error
    })
    const first = await Promise.race([server.loaded.then(() => undefined), stop]).catch(async (error: unknown) => {
      log('error', 'model failed to load', {error: (error as Error).message})
      await server.close()
      throw error
    })
    if (first !== undefined) {
      await server.close()
      link?.close()
      return stopped(first, server.url)
    }

    const stoppedBy = await stop
    // A worker drains silently: the primary speaks for the pod.
    if (!link) log('info', 'shutting down: finishing in-flight requests', {signal: stoppedBy})
    await server.close()
    if (!link) log('info', 'stopped')
    link?.close()
    return {url: server.url, name: prepared.source.name, sha256: prepared.sha256, stoppedBy}
  }

  /** A worker's failure goes to the primary, which says it once for the pod. */
  protected async catch(error: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<never> {
    if (!cluster.isWorker) return super.catch(error)
    const described = describeError(error)
    await reportFailure(described)
    this.exit(described.exitCode)
  }
}

/** The model file's size, for the default worker count (0 when unreadable: reading it fails later, with its own message). */
function fileSize(path: string): number {
  try {
    return statSync(path).size
  } catch {
    return 0
  }
}

function expectedSha256(text: string | undefined): string | undefined {
  if (text === undefined || text === '') return undefined
  if (!/^[0-9a-f]{64}$/.test(text)) throw new UsageError(`--sha256 "${text.slice(0, 80)}" is not a sha256: 64 lower-case hex digits`)
  return text
}

function parseSample(text: string): unknown {
  const json = text.startsWith('@') ? readFileSync(text.slice(1), 'utf8') : text
  try {
    return JSON.parse(json)
  } catch (error) {
    throw new UsageError(`--sample is not valid JSON: ${(error as Error).message}`, {suggestion: "e.g. --sample '[5.1, 3.5, 1.4, 0.2]'"})
  }
}
