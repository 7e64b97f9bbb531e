/**
 * The pod contract of the model-load pattern, stated once: where the loader
 * puts the model, how it is told which one, what the API container reads,
 * the annotations that say which model a pod template carries, the log
 * events and termination summary the targets diagnose from, and what
 * "ready" means. The Kubernetes values, the docker and local targets,
 * `mlops model pull` (the loader) and `mlops serve` (the API) all use it.
 */
import {ExitCode, IncompatibleError} from '../errors.js'
import type {ModelManifest} from '../store/manifest.js'
import {DEFAULT_STORE_TIMEOUT_SECONDS} from '../store/defaults.js'
import type {StoreSettings} from '../store/open.js'

/** The volume shared by the loader and the API container (an emptyDir in a pod). */
export const WORKDIR = '/workdir'
export const MODEL_PATH = `${WORKDIR}/model.onnx`
export const LABELS_PATH = `${WORKDIR}/labels.json`
/** The version's reference set, when it has one: serve's warm-up, and its check that this runtime answers as recorded. */
export const REFERENCE_PATH = `${WORKDIR}/reference.json`

/** Container names in the pod (templates/manifests/deployment.yaml) and the API container's port name. */
export const CONTAINERS = {loader: 'model-loader', api: 'api'} as const
export const API_PORT_NAME = 'http'

/** Where a GCS service-account key Secret is mounted in the loader. */
export const GCS_KEY_DIR = '/var/secrets/google'
export const GCS_KEY_PATH = `${GCS_KEY_DIR}/key.json`

/** Where Kubernetes reads a container's termination message by default. */
export const TERMINATION_LOG = '/dev/termination-log'

/** The API container's environment: what `mlops serve` reads. */
export const API_ENV = {
  model: 'MODEL_FILEPATH',
  labels: 'LABEL_FILEPATH',
  name: 'MODEL_NAME',
  version: 'MODEL_VERSION',
  port: 'PORT',
  host: 'MLOPS_HOST',
  /** The sha256 the model file must have; serve refuses anything else (image volumes are verified too). */
  sha256: 'MODEL_SHA256',
  /** The version's reference set: serve answers it at warm-up and refuses to be ready when its answers drift. */
  reference: 'MODEL_REFERENCE_FILEPATH',
  /** How many server processes share the port (default: from the container's CPU quota). */
  workers: 'MLOPS_WORKERS',
  /** A token the local target gives the server it starts, answered at INSTANCE_PATH with its pid. */
  instance: 'MLOPS_SERVE_INSTANCE',
  /** The shadow config file serve follows (deploy --shadow writes it, through a ConfigMap volume). */
  shadowConfig: 'MLOPS_SHADOW_CONFIG',
} as const

/**
 * Shadow traffic on Kubernetes: every API container mounts the optional ConfigMap <app>-shadow
 * here and follows its file (absent or empty: no shadow), so that deploy --shadow turns the
 * stable's mirroring on and off without restarting a pod.
 */
export const SHADOW_DIR = '/etc/mlops/shadow'
export const SHADOW_CONFIG_KEY = 'shadow.json'
export const SHADOW_CONFIG_PATH = `${SHADOW_DIR}/${SHADOW_CONFIG_KEY}`
export const SHADOW_VOLUME = 'shadow-config'
/** The ConfigMap the stable's pods read their shadow config from. */
export const shadowConfigMapName = (app: string): string => `${app}-shadow`

/**
 * Where a server says who it is: `{pid, instance}`. The local target signals a
 * recorded pid only when the server at the recorded URL answers that pid and
 * the token it was started with: a pid alone may belong to a stranger by now,
 * and no Linux-only /proc is needed to tell.
 */
export const INSTANCE_PATH = '/instance'

export interface ServerInstance {
  pid: number
  instance: string | null
}

/** The server's own answer at INSTANCE_PATH, validated; undefined when nothing (or something else) answers. */
export async function serverInstance(url: string, timeoutMs = 2000): Promise<ServerInstance | undefined> {
  try {
    const response = await fetch(`${url}${INSTANCE_PATH}`, {signal: AbortSignal.timeout(timeoutMs), redirect: 'error'})
    if (!response.ok) return undefined
    const body = (await response.json()) as Partial<ServerInstance> | null
    if (!body || !Number.isSafeInteger(body.pid) || (body.pid as number) <= 0) return undefined
    if (body.instance !== null && typeof body.instance !== 'string') return undefined
    return {pid: body.pid as number, instance: body.instance}
  } catch {
    return undefined
  }
}

/** The loader's environment: what `mlops model pull` reads besides its arguments. */
export const LOADER_ENV = {
  store: 'MLOPS_STORE',
  logFormat: 'MLOPS_LOG_FORMAT',
  endpoint: 'MLOPS_GCS_ENDPOINT',
  anonymous: 'MLOPS_GCS_ANONYMOUS',
  project: 'MLOPS_GCS_PROJECT',
  timeout: 'MLOPS_STORE_TIMEOUT',
  terminationLog: 'MLOPS_TERMINATION_LOG',
  credentials: 'GOOGLE_APPLICATION_CREDENTIALS',
} as const

/** Pod-template annotations: which model a revision carries (read back by status and rollback). */
export const ANNOTATIONS = {
  model: 'mlops.io/model',
  version: 'mlops.io/model-version',
  sha256: 'mlops.io/model-sha256',
  size: 'mlops.io/model-size',
  loaderImage: 'mlops.io/loader-image',
  apiImage: 'mlops.io/api-image',
} as const

/** Every annotation of ours starts so; rollback carries them over to the restored revision. */
export const ANNOTATION_PREFIX = 'mlops.io/'

/** The `msg` of the JSON log lines the targets look for. */
export const LOG_EVENTS = {
  /** serve: the URL it listens on (the model may still be loading). */
  listening: 'listening',
  /** serve: a failure before or while loading. */
  serveFailed: 'serve failed',
  /** loader: resolved a ref to a version. */
  resolved: 'resolved',
  /** loader: the model is in place, verified. */
  verified: 'verified',
  upToDate: 'up to date',
  /** loader: the failure, with its code and message. */
  pullFailed: 'pull failed',
} as const

/** HTTP paths of the API container: ready once the model is loaded and warmed up; healthy while the process runs. */
export const READY_PATH = '/ready'
export const HEALTH_PATH = '/health'

/**
 * How the model reaches the work folder: the loader initContainer pulls it
 * from the store into an emptyDir, or the node's runtime mounts the published
 * model image read-only (an image volume), pinned by digest; then the API
 * container verifies the file's sha256 itself (API_ENV.sha256).
 */
/** An image volume's `reference`: the model image carries the version's reference set (reference.json), which serve answers at warm-up. */
export type Delivery = {kind: 'init-container'} | {kind: 'image-volume'; image: string; reference?: boolean}

/** What a deploy may ask for (--delivery, deploy.delivery): a Delivery's kind, or auto (the image volume where the cluster can mount it). */
export const DELIVERIES = ['init-container', 'image-volume', 'auto'] as const
export type DeliveryRequest = (typeof DELIVERIES)[number]

/** The annotation that says how a revision gets its model, and from which image (absent: the loader). */
export const DELIVERY_ANNOTATIONS = {delivery: 'mlops.io/delivery', image: 'mlops.io/model-image'} as const

/** The loader's termination message: one JSON line (mlops model pull --termination-log). */
export type LoaderSummary =
  | {ok: true; name: string; version: string; sha256: string; bytes: number; seconds: number; uptime: number; [key: string]: unknown}
  | {ok: false; ref?: string; seconds: number; error: {code: string; exitCode: number; message: string}}

export interface Env {
  name: string
  value: string
}

/** What a deploy knows of the version besides its manifest: whether it has a reference set. */
export interface VersionExtras {
  reference?: boolean
}

/** The loader's arguments: the pinned NAME@VERSION into the work folder (and the labels and reference set beside it). */
export function loaderArgs(manifest: Pick<ModelManifest, 'labels' | 'name' | 'version'>, extras: VersionExtras = {}): string[] {
  return [
    `${manifest.name}@${manifest.version}`,
    '--to',
    MODEL_PATH,
    ...(manifest.labels ? ['--labels-to', LABELS_PATH] : []),
    ...(extras.reference ? ['--reference-to', REFERENCE_PATH] : []),
  ]
}

/** The loader's environment for a store; `store` is the URI as the loader sees it (a local store's folder, mounted). */
export function loaderEnv(settings: StoreSettings, options: {store?: string; keyFile: boolean}): Env[] {
  return [
    {name: LOADER_ENV.store, value: options.store ?? settings.uri},
    {name: LOADER_ENV.logFormat, value: 'json'},
    ...(settings.endpoint ? [{name: LOADER_ENV.endpoint, value: settings.endpoint}] : []),
    // Said either way, it reaches the loader either way (false: credentials even to a plain-http endpoint).
    ...(settings.anonymous === undefined ? [] : [{name: LOADER_ENV.anonymous, value: String(settings.anonymous)}]),
    ...(settings.project ? [{name: LOADER_ENV.project, value: settings.project}] : []),
    ...(settings.timeoutSeconds === DEFAULT_STORE_TIMEOUT_SECONDS
      ? []
      : [{name: LOADER_ENV.timeout, value: String(settings.timeoutSeconds)}]),
    ...(options.keyFile ? [{name: LOADER_ENV.credentials, value: GCS_KEY_PATH}] : []),
  ]
}

/** The API container's environment for a model; a pinned sha256 makes serve verify the file it did not download. */
export function apiEnv(
  manifest: Pick<ModelManifest, 'labels' | 'name' | 'sha256' | 'version'>,
  port: number,
  options: {pinSha256?: boolean; workers?: number; shadowConfig?: boolean} & VersionExtras = {},
): Env[] {
  return [
    {name: API_ENV.model, value: MODEL_PATH},
    ...(manifest.labels ? [{name: API_ENV.labels, value: LABELS_PATH}] : []),
    ...(options.reference ? [{name: API_ENV.reference, value: REFERENCE_PATH}] : []),
    {name: API_ENV.name, value: manifest.name},
    {name: API_ENV.version, value: manifest.version},
    {name: API_ENV.port, value: String(port)},
    ...(options.pinSha256 ? [{name: API_ENV.sha256, value: manifest.sha256}] : []),
    ...(options.workers === undefined ? [] : [{name: API_ENV.workers, value: String(options.workers)}]),
    ...(options.shadowConfig ? [{name: API_ENV.shadowConfig, value: SHADOW_CONFIG_PATH}] : []),
  ]
}

/** NAME=value, as the Docker engine takes an environment. */
export function envList(env: Env[]): string[] {
  return env.map(({name, value}) => `${name}=${value}`)
}

export function modelAnnotations(manifest: ModelManifest, images: {api: string; loader: string}): Record<string, string> {
  return {
    [ANNOTATIONS.model]: manifest.name,
    [ANNOTATIONS.version]: manifest.version,
    [ANNOTATIONS.sha256]: manifest.sha256,
    [ANNOTATIONS.size]: String(manifest.size),
    [ANNOTATIONS.loaderImage]: images.loader,
    [ANNOTATIONS.apiImage]: images.api,
  }
}

/** Which model a pod template's annotations name (null where one is missing). */
export function annotatedModel(annotations: Record<string, string> | undefined): {
  name: string | null
  version: string | null
  sha256: string | null
} {
  return {
    name: annotations?.[ANNOTATIONS.model] ?? null,
    version: annotations?.[ANNOTATIONS.version] ?? null,
    sha256: annotations?.[ANNOTATIONS.sha256] ?? null,
  }
}

/** How a pod template's annotations say it gets its model (no annotation: the loader). */
export function annotatedDelivery(annotations: Record<string, string> | undefined): Delivery {
  const image = annotations?.[DELIVERY_ANNOTATIONS.image]
  return annotations?.[DELIVERY_ANNOTATIONS.delivery] === 'image-volume' && image ? {kind: 'image-volume', image} : {kind: 'init-container'}
}

/** A JSON log line of ours, or undefined for anything else (plain text, a torn line). */
export function parseLogLine(line: string): {msg?: string; [key: string]: unknown} | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    const parsed = JSON.parse(line) as unknown
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as {msg?: string}) : undefined
  } catch {
    return undefined
  }
}

/** The first JSON log line with this event in a container's or process's output. */
export function findLogEvent(output: string, event: string): {msg?: string; [key: string]: unknown} | undefined {
  for (const line of output.split('\n')) {
    const parsed = parseLogLine(line.trim())
    if (parsed?.msg === event) return parsed
  }

  return undefined
}

/**
 * serve's own failure when it refused the model (exit 8: the runtime cannot load it, or its answers
 * drift from the version's reference set), from its log: the same model fails the same way on every
 * restart, so a deploy fails with that code and serve's words rather than waiting for a deadline.
 */
export function serveRefusal(output: string | undefined): IncompatibleError | undefined {
  const event = output ? findLogEvent(output, LOG_EVENTS.serveFailed) : undefined
  if (event?.exitCode !== ExitCode.INCOMPATIBLE || typeof event.message !== 'string') return undefined
  return new IncompatibleError(`mlops serve refused the model: ${event.message.slice(0, 600)}`, {
    suggestion: typeof event.suggestion === 'string' ? event.suggestion.slice(0, 300) : undefined,
  })
}

/** The loader's termination summary, when the message is one (FallbackToLogsOnError may give the log tail instead). */
export function parseLoaderSummary(message: string | undefined): LoaderSummary | undefined {
  const parsed = message ? parseLogLine(message.trim().split('\n')[0]) : undefined
  return parsed && typeof parsed.ok === 'boolean' ? (parsed as unknown as LoaderSummary) : undefined
}

/** Whether a server of ours at `url` answers 200 on its readiness path. */
export async function isReady(url: string, timeoutMs = 2000): Promise<boolean> {
  try {
    return (await fetch(`${url}${READY_PATH}`, {signal: AbortSignal.timeout(timeoutMs)})).ok
  } catch {
    return false
  }
}

/**
 * Polls until the server answers on its readiness path. `url` may not be known
 * yet (a server on a free port says it in its log); `failure` says why waiting
 * is pointless (the process or container is gone), else undefined.
 */
export async function waitUntilReady(options: {
  url: () => string | undefined
  failure: () => Promise<string | undefined>
  timeoutMs: number
  intervalMs?: number
}): Promise<{url: string} | {failure: string} | {timedOut: true}> {
  const deadline = Date.now() + options.timeoutMs
  while (Date.now() < deadline) {
    const url = options.url()
    if (url && (await isReady(url))) return {url}
    const failure = await options.failure()
    if (failure !== undefined) return {failure}
    await new Promise(resolve => {
      setTimeout(resolve, options.intervalMs ?? 50)
    })
  }

  return {timedOut: true}
}

/**
 * Workers for a CPU limit (a Kubernetes quantity: 2, 1.5, 500m): one per whole core, rounded up,
 * at least one; one without a limit. Stated in the pod spec because a container cannot always
 * read its own quota or memory limit (cgroup v1 without a cgroup namespace), and a worker per
 * node core would each load the model into a memory limit sized for one.
 */
export function workersForCpuLimit(limit: number | string | undefined): number {
  const match = /^(\d+(?:\.\d+)?)(m?)$/.exec(String(limit ?? '').trim())
  if (!match) return 1
  const cores = Number(match[1]) / (match[2] === 'm' ? 1000 : 1)
  return Math.max(1, Math.ceil(cores))
}
