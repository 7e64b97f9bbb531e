import cluster from 'node:cluster'
import {readFileSync, statSync} from 'node:fs'
import {availableParallelism} from 'node:os'
import {basename, extname} from 'node:path'

import type {Logger} from '../cli/log.js'
import {UsageError} from '../errors.js'
import {containerCpuQuota, containerMemoryLimit, defaultWorkerCount} from './limits.js'
import {type ModelSource, checkModel, loadModel, prepareModel, runtimeName} from './model.js'
import {DEFAULT_TOLERANCE, type ParityResult} from './parity.js'
import {PoolLink, runPool} from './pool.js'
import {type ServerOptions, startServer, warmUp} from './server.js'

export interface ServeOptions {
  modelPath: string
  labelsPath?: string
  /** In metrics and the v2 API (default: the file name without its extension). */
  name?: string
  version?: string
  /** One input row as JSON, or @FILE, for /metadata, /predict/test and the warm-up (default: zeros). */
  sample?: string
  labelFrom: 'argmax' | 'output'
  /** Refuse to serve unless the model file has this sha256 (64 lower-case hex; empty: no check). */
  sha256?: string
  /** The version's reference set (the loader's reference.json): answered at warm-up, within the tolerance. */
  referencePath?: string
  referenceTolerance?: number
  /** Load, warm up and answer the reference set, then exit: what `mlops image check` runs in an API image. */
  check?: boolean
  host: string
  port: number
  /** Processes sharing the port (default: from the CPU quota or the cores, and the memory limit). */
  workers?: number
  intraOpThreads: number
  /** Largest request body in bytes. */
  bodyLimit: number
  /** Request-body bytes each worker handles at once (default: from the memory limit). */
  inFlightBytes?: number
  /** Mirror a sample of prediction requests to a candidate (a URL, or a config file that names one). */
  shadow?: ShadowFlags
}

/** The shadow as flags give it: --shadow-url or --shadow-config, and the sample, timeout and queue. */
export interface ShadowFlags {
  url?: URL
  configPath?: string
  sample: number
  timeoutMs: number
  queue: number
}

export interface ServeResult {
  url: string
  name: string
  sha256: string
  stoppedBy: string
  /** The runtime that loaded the model (--check). */
  runtime?: string
  /** How the answers compare with the reference set's, when there is one. */
  parity?: ParityResult
}

/** What every way of serving shares: the log, the stop signal, and this process's place among the workers. */
interface Serving {
  log: Logger
  /** Settles with the signal (SIGTERM, SIGINT) that stops the server. */
  stop: Promise<string>
  /** Set in a worker forked by the primary. */
  link?: PoolLink
  workers: number
}

/**
 * mlops serve: checks the model before anything listens (a missing, unreadable
 * or invalid model fails with its exit code), then serves it in this process,
 * or as the primary of several workers that each serve it, until SIGTERM or
 * SIGINT; a stop while the model loads ends at once.
 */
export async function serve(options: ServeOptions, logger: Logger): Promise<ServeResult> {
  // Forked by a primary (several workers): this process is one of them.
  const link = cluster.isWorker ? new PoolLink() : undefined
  const log: Logger = link ? (level, msg, fields) => logger(level, msg, {worker: link.id, ...fields}) : logger
  // Listened for from the start: a pod stopped while its model is read or loaded (a scale-down,
  // a rollout) exits 0 at once, not after the load.
  const stop = new Promise<string>(resolve => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve(signal))
  })
  const source = modelSource(options)
  const workers = options.workers ?? defaultWorkers(options.modelPath)
  log('info', 'reading the model', {model: options.modelPath})
  if (options.check) return checkOnly(source, log)
  const serving: Serving = {log, stop, link, workers}
  return !link && workers > 1 ? serveWithWorkers(source, options, serving) : serveInProcess(source, options, serving)
}

/** The primary checks the model as one server would (same failures, before anything listens), keeps none of it, and forks. */
async function serveWithWorkers(source: ModelSource, options: ServeOptions, {log, stop, workers}: Serving): Promise<ServeResult> {
  const checked = await Promise.race([checkModel(source), stop])
  if (typeof checked === 'string') return stoppedWhileLoading(log, source, checked)
  const {url, stoppedBy} = await runPool({workers, host: options.host, modelPath: options.modelPath, log, stop})
  log('info', 'stopped')
  return {url, name: checked.name, sha256: checked.sha256, stoppedBy}
}

/** One server in this process (alone, or one worker of several): listens, loads the model, serves until stopped. */
async function serveInProcess(source: ModelSource, options: ServeOptions, {log, stop, link, workers}: Serving): Promise<ServeResult> {
  const prepared = await Promise.race([prepareModel(source), stop])
  if (typeof prepared === 'string') return stoppedWhileLoading(log, source, prepared)
  const server = await startServer(prepared, {
    host: options.host,
    port: options.port,
    bodyLimit: options.bodyLimit,
    inFlightBytes: options.inFlightBytes,
    intraOpThreads: options.intraOpThreads,
    pool: link && {link, workers},
    shadow: shadowOptions(options),
    log,
  }).catch(error => {
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE')
      throw new UsageError(`port ${options.port} on ${options.host} is already in use`, {suggestion: 'pass another --port (or PORT)'})
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
    return stoppedWhileLoading(log, source, first, server.url)
  }

  const stoppedBy = await stop
  // A worker drains silently: the primary speaks for the pod.
  if (!link) log('info', 'shutting down: finishing in-flight requests', {signal: stoppedBy})
  await server.close()
  if (!link) log('info', 'stopped')
  link?.close()
  return {url: server.url, name: prepared.source.name, sha256: prepared.sha256, stoppedBy}
}

/** --check in this process, without serving or signals of its own: what mlops image check runs for this CLI's runtime. */
export async function checkServing(
  options: Pick<ServeOptions, 'labelsPath' | 'modelPath' | 'name' | 'referencePath' | 'referenceTolerance' | 'sha256' | 'version'>,
  log: Logger,
): Promise<ServeResult> {
  return checkOnly(modelSource({...options, labelFrom: 'output', host: '127.0.0.1', port: 0, intraOpThreads: 1, bodyLimit: 1}), log)
}

/** --check: what a server would do before it is ready (load, warm up, answer the reference set), in this process, then exit. */
async function checkOnly(source: ModelSource, log: Logger): Promise<ServeResult> {
  const prepared = await prepareModel(source)
  const served = await loadModel(prepared)
  try {
    const parity = await warmUp(prepared, served)
    const runtime = runtimeName(served)
    log('info', 'checked', {name: served.name, version: served.version, sha256: served.sha256, runtime, ...(parity ? {parity} : {})})
    return {url: '', name: served.name, sha256: served.sha256, stoppedBy: 'check', runtime, ...(parity ? {parity} : {})}
  } finally {
    await served.engine.close()
  }
}

/** What the server's shadow needs, when a candidate is named (a URL or a config file); a numeric difference within the reference tolerance agrees. */
function shadowOptions(options: ServeOptions): ServerOptions['shadow'] {
  const {shadow} = options
  if (!shadow || (!shadow.url && !shadow.configPath)) return undefined
  const defaults = {sample: shadow.sample, timeoutMs: shadow.timeoutMs}
  return {
    target: shadow.url && {urls: [shadow.url], ...defaults},
    configPath: shadow.configPath,
    defaults,
    queue: shadow.queue,
    tolerance: options.referenceTolerance ?? DEFAULT_TOLERANCE,
  }
}

function stoppedWhileLoading(log: Logger, source: ModelSource, signal: string, url = ''): ServeResult {
  log('info', 'stopped while loading the model', {signal})
  return {url, name: source.name, sha256: '', stoppedBy: signal}
}

function modelSource(options: ServeOptions): ModelSource {
  return {
    modelPath: options.modelPath,
    labelsPath: options.labelsPath,
    name: options.name ?? basename(options.modelPath, extname(options.modelPath)),
    version: options.version,
    sample: options.sample === undefined ? undefined : parseSample(options.sample),
    labelFrom: options.labelFrom,
    expectedSha256: expectedSha256(options.sha256),
    referencePath: options.referencePath || undefined,
    referenceTolerance: options.referenceTolerance,
  }
}

function defaultWorkers(modelPath: string): number {
  return defaultWorkerCount({
    cpuQuota: containerCpuQuota(),
    cores: availableParallelism(),
    memoryLimit: containerMemoryLimit(),
    modelBytes: fileSize(modelPath),
  })
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
