/**
 * Shadow traffic: the stable server mirrors a sample of its prediction requests to a candidate
 * that gets no user traffic, and counts whether the candidate answers the same (the rule of
 * `mlops model compare`: labels equal, every number within the tolerance). The mirror starts
 * once the client's response has been sent and nothing of it flows back: a slow, failing,
 * hanging or crashing candidate costs the stable at most `queue` requests in flight per worker,
 * each bounded in time (the timeout) and bytes (the body limit), and never changes an answer.
 */
import {open} from 'node:fs/promises'
import {Agent as HttpAgent, type IncomingMessage, type RequestOptions, request as httpRequest} from 'node:http'
import {Agent as HttpsAgent, request as httpsRequest} from 'node:https'

import type {FastifyInstance, FastifyRequest, onResponseHookHandler, onSendHookHandler} from 'fastify'

import type {Logger} from '../cli/log.js'
import {UsageError, errorMessage} from '../errors.js'
import {compareAnswers, serverAnswers} from '../predict/compare-rules.js'
import type {ReferenceOutput} from '../store/references.js'
import {parseDuration} from '../util/duration.js'
import type {Metrics} from './metrics.js'

/** Where mirrored requests go, which share of them, and how long one may take. */
export interface ShadowTarget {
  /** http(s), a host, no credentials, query or fragment; the request's path is appended to its path. Several: taken in turn. */
  urls: URL[]
  /** Share of prediction requests mirrored, in (0, 1]. */
  sample: number
  timeoutMs: number
}

export interface ShadowOptions {
  /** A fixed target (--shadow-url); or, instead, */
  target?: ShadowTarget
  /** a JSON file {"url" or "urls", "sample", "timeoutMs"} read again every second (--shadow-config): absent or empty, no shadow. */
  configPath?: string
  /** The file's sample and timeoutMs when it leaves them out (--shadow-sample, --shadow-timeout). */
  defaults: {sample: number; timeoutMs: number}
  /** Mirrored requests in flight at most (per worker); a sampled request beyond it is dropped. */
  queue: number
  /** Largest difference of any number that is still the same answer. */
  tolerance: number
  /** Largest candidate answer read, in bytes (the server's body limit). */
  bodyLimit: number
  log: Logger
}

export const SHADOW_RESULTS = ['agree', 'disagree', 'error', 'timeout', 'dropped'] as const
export type ShadowResult = (typeof SHADOW_RESULTS)[number]

export const DEFAULT_SHADOW_SAMPLE = 0.1
export const DEFAULT_SHADOW_TIMEOUT_MS = 2000
export const DEFAULT_SHADOW_QUEUE = 64
export const MAX_SHADOW_TIMEOUT_MS = 60_000
/** How often the config file is read again. */
const POLL_MS = 1000
/** A config file larger than this is not one. */
const MAX_CONFIG_BYTES = 64 * 1024
/** The most candidate URLs a config file may list. */
export const MAX_SHADOW_URLS = 64

/** The routes whose answers are predictions of user data, and how each answer reads. */
const MIRRORED: Record<string, AnswerKind> = {
  '/predict': 'prediction',
  '/predict/label': 'label',
  '/v2/models/:name/infer': 'v2',
}
type AnswerKind = 'label' | 'prediction' | 'v2'

/** A URL as it may be logged or quoted: scheme, host and path, never userinfo or query. */
export function describeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`
}

/** A candidate's base URL, strictly: http(s), a host, no credentials, no query or fragment. The message never quotes a secret. */
export function parseShadowUrl(text: string, where = '--shadow-url'): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new UsageError(`${where} is not a URL`, {suggestion: 'e.g. http://candidate:8000'})
  }

  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`${where} must be http:// or https://, not ${url.protocol.slice(0, 20)}//`, {
      suggestion: 'e.g. http://candidate:8000',
    })
  if (url.hostname === '') throw new UsageError(`${where} has no host`, {suggestion: 'e.g. http://candidate:8000'})
  if (url.username !== '' || url.password !== '')
    throw new UsageError(`${where} must not carry credentials (${url.protocol}//***@${url.host})`, {
      suggestion: 'the candidate is reached inside the cluster without credentials',
    })
  if (url.search !== '' || url.hash !== '')
    throw new UsageError(`${where} must be a base URL without a query or fragment (${describeUrl(url)})`, {
      suggestion: "each request's path is appended to it",
    })
  return url
}

/** A share of requests: a finite number in (0, 1]. */
export function parseShadowSample(value: unknown, where = '--shadow-sample'): number {
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value
  if (typeof number !== 'number' || !Number.isFinite(number) || number <= 0 || number > 1)
    throw new UsageError(`${where} ${JSON.stringify(String(value).slice(0, 40))} is not a share above 0 and at most 1`, {
      suggestion: 'e.g. 0.1 for one request in ten',
    })
  return number
}

/** A timeout: milliseconds (`500ms`) or a duration (`2s`, a bare number is seconds), at most a minute. */
export function parseShadowTimeout(text: string, where = '--shadow-timeout'): number {
  const ms = /^\s*\d+ms\s*$/.test(text) ? Number.parseInt(text, 10) : parseDuration(text, where)
  return boundedTimeout(ms, where)
}

function boundedTimeout(ms: unknown, where: string): number {
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 1 || ms > MAX_SHADOW_TIMEOUT_MS)
    throw new UsageError(`${where} must be 1 ms to ${MAX_SHADOW_TIMEOUT_MS / 1000} s`, {suggestion: 'e.g. 2s or 500ms'})
  return ms
}

/**
 * The shadow config file's text: empty (or only white space) is no shadow; else exactly
 * {"url" or "urls", "sample"?, "timeoutMs"?}, each as strict as its flag ("urls": 1 to 64 base URLs,
 * mirrored to in turn, as mlops deploy --shadow writes the candidate's pods). Throws a message that quotes no secret.
 */
export function parseShadowConfig(text: string, defaults: {sample: number; timeoutMs: number}): ShadowTarget | undefined {
  if (text.trim() === '') return undefined
  let config: unknown
  try {
    config = JSON.parse(text)
  } catch {
    throw new UsageError('it is not JSON')
  }

  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new UsageError('it is not a JSON object')
  const unknown = Object.keys(config).filter(key => !['url', 'urls', 'sample', 'timeoutMs'].includes(key))
  if (unknown.length > 0)
    throw new UsageError(`unknown field ${JSON.stringify(unknown[0].slice(0, 40))}: the fields are url or urls, sample, timeoutMs`)
  const {url, urls, sample, timeoutMs} = config as {url?: unknown; urls?: unknown; sample?: unknown; timeoutMs?: unknown}
  if ((url === undefined) === (urls === undefined)) throw new UsageError('it needs exactly one of url and urls')
  if (url !== undefined && typeof url !== 'string') throw new UsageError('url is not a string')
  if (urls !== undefined && (!Array.isArray(urls) || urls.length === 0 || urls.length > MAX_SHADOW_URLS))
    throw new UsageError(`urls is not a list of 1 to ${MAX_SHADOW_URLS} URLs`)
  const texts = (urls ?? [url]) as unknown[]
  return {
    urls: texts.map((each, index) => {
      if (typeof each !== 'string') throw new UsageError(`urls[${index}] is not a string`)
      return parseShadowUrl(each, urls === undefined ? 'url' : `urls[${index}]`)
    }),
    sample: sample === undefined ? defaults.sample : parseShadowSample(typeof sample === 'number' ? sample : Number.NaN, 'sample'),
    timeoutMs: timeoutMs === undefined ? defaults.timeoutMs : boundedTimeout(timeoutMs, 'timeoutMs'),
  }
}

/** The candidates of a target as logged: each URL without userinfo or query. */
export function describeTarget(target: ShadowTarget): string {
  return target.urls.map(url => describeUrl(url)).join(', ')
}

/**
 * Whether the candidate's answer is the stable's: labels equal and every number within the
 * tolerance, as `mlops model compare` judges. The candidate's body is hostile input: anything
 * but a well-formed answer for as many rows throws (an error, not a disagreement).
 */
export function sameAnswer(kind: AnswerKind, stable: unknown, candidate: unknown, tolerance: number): boolean {
  const [a, b] =
    kind === 'v2' ? [v2Answer(stable, 'the stable'), v2Answer(candidate, 'the candidate')] : rowAnswers(kind, stable, candidate)
  const comparison = compareAnswers(
    a.map(() => []),
    {outputs: a},
    {outputs: b},
    {worst: 0, thresholds: {}},
  )
  return comparison.disagreeing.length === 0 && comparison.unmatched.length === 0 && comparison.maxDelta <= tolerance
}

function rowAnswers(kind: 'label' | 'prediction', stable: unknown, candidate: unknown): [ReferenceOutput[], ReferenceOutput[]] {
  const prediction = (stable as {prediction?: unknown})?.prediction
  const rows = kind === 'label' && !Array.isArray(prediction) ? 1 : Array.isArray(prediction) ? prediction.length : 0
  const read = (body: unknown, where: string) =>
    serverAnswers(body, rows, kind, where).map(answer =>
      kind === 'label' ? {label: answer as number | string, prediction: []} : {prediction: answer},
    )
  return [read(stable, 'the stable'), read(candidate, 'the candidate')]
}

/** A v2 answer as one row: every output's shape and numbers by name, and its strings (BYTES) as the label. */
function v2Answer(body: unknown, where: string): ReferenceOutput[] {
  const outputs = (body as {outputs?: unknown})?.outputs
  if (typeof body !== 'object' || body === null || !Array.isArray(outputs) || outputs.length === 0 || outputs.length > 64)
    throw new Error(`${where} answered no v2 outputs`)
  const prediction: Record<string, {shape: number[]; data: number[]}> = {}
  const strings: string[] = []
  for (const output of outputs as Array<{name?: unknown; shape?: unknown; data?: unknown}>) {
    const {name, shape, data} = output ?? {}
    if (typeof name !== 'string' || name in prediction || !Array.isArray(shape) || !Array.isArray(data))
      throw new Error(`${where} answered an output without a name, shape or data`)
    if (!shape.every(d => Number.isInteger(d) && d >= 0)) throw new Error(`${where} answered output ${name.slice(0, 40)} with a bad shape`)
    const numbers: number[] = []
    for (const value of data) {
      if (typeof value === 'number' && Number.isFinite(value)) numbers.push(value)
      else if (typeof value === 'string') strings.push(`${name}\u0000${value}`)
      else throw new Error(`${where} answered output ${name.slice(0, 40)} with data that is neither numbers nor strings`)
    }

    prediction[name] = {shape, data: numbers}
  }

  return [{label: JSON.stringify(strings), prediction}]
}

/** One sampled request, kept from its answer until its mirror starts. */
interface Mirror {
  kind: AnswerKind
  path: string
  body: string
  stable: string
}

/** The shadow of one server process: samples, mirrors, compares and counts; follows the config file when there is one. */
export class Shadow {
  private target: ShadowTarget | undefined
  private readonly inFlight = new Set<AbortController>()
  private readonly sampled = new WeakMap<FastifyRequest, Mirror>()
  /** Keep-alive connections to the candidate, no more than the queue (a mirrored request waits for none). */
  private readonly agents: {http: HttpAgent; https: HttpsAgent}
  private poller?: NodeJS.Timeout
  private reading?: Promise<void>
  /** What the config file's last read found, so that only a change is applied and logged. */
  private lastConfig?: string
  /** The next candidate URL to mirror to, when there are several. */
  private turn = 0
  private closed = false

  constructor(
    private readonly options: ShadowOptions,
    private readonly metrics: Metrics,
  ) {
    const sockets = {keepAlive: true, maxSockets: options.queue, maxFreeSockets: options.queue, timeout: 30_000}
    this.agents = {http: new HttpAgent(sockets), https: new HttpsAgent(sockets)}
    metrics.enableShadow()
    if (options.target) {
      this.target = options.target
      metrics.shadowOn(true)
      options.log('info', 'shadow on', {
        url: describeTarget(options.target),
        sample: options.target.sample,
        timeoutMs: options.target.timeoutMs,
      })
    }
    if (options.configPath) {
      this.poll(options.configPath)
      this.poller = setInterval(() => this.poll(options.configPath!), POLL_MS).unref()
    }
  }

  /**
   * Hooks into the prediction routes (registered after this): keeps a sampled request's answer
   * as sent, and mirrors it once the response is out. Callback hooks, on those routes only: the
   * requests that are not drawn pay one random number.
   */
  attach(app: FastifyInstance): void {
    const onSend: onSendHookHandler = (request, reply, payload, done) => {
      const {target} = this
      if (target && reply.statusCode === 200 && typeof payload === 'string' && Math.random() < target.sample) {
        const kind = MIRRORED[request.routeOptions.url ?? '']
        this.sampled.set(request, {kind, path: request.url, body: JSON.stringify(request.body), stable: payload})
      }

      done(null, payload)
    }

    const onResponse: onResponseHookHandler = (request, _reply, done) => {
      const mirror = this.sampled.get(request)
      if (mirror) {
        this.sampled.delete(request)
        this.start(mirror)
      }

      done()
    }

    app.addHook('onRoute', route => {
      if (route.method !== 'POST' || !Object.hasOwn(MIRRORED, route.url)) return
      route.onSend = [onSend, ...hooksOf(route.onSend)]
      route.onResponse = [onResponse, ...hooksOf(route.onResponse)]
    })
  }

  /** Stops following the config file and aborts every mirrored request in flight (not counted): a stop never waits on the candidate. */
  close(): void {
    this.closed = true
    clearInterval(this.poller)
    for (const controller of this.inFlight) controller.abort()
    this.agents.http.destroy()
    this.agents.https.destroy()
  }

  private start(mirror: Mirror): void {
    const {target} = this
    if (!target || this.closed) return
    if (this.inFlight.size >= this.options.queue) {
      this.metrics.shadowResult('dropped')
      return
    }

    void this.send(target, mirror).then(result => {
      if (result) this.metrics.shadowResult(result)
    })
  }

  /** One mirrored request, judged; undefined when the server stopped meanwhile. Never rejects. */
  private async send(target: ShadowTarget, mirror: Mirror): Promise<ShadowResult | undefined> {
    const controller = new AbortController()
    this.inFlight.add(controller)
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      controller.abort()
    }, target.timeoutMs)
    const started = performance.now()
    try {
      const answer = await this.fetch(target, mirror, controller.signal)
      this.metrics.shadowLatency((performance.now() - started) / 1000)
      if (answer.status !== 200) return 'error'
      return sameAnswer(mirror.kind, JSON.parse(mirror.stable), JSON.parse(answer.body), this.options.tolerance) ? 'agree' : 'disagree'
    } catch {
      if (this.closed) return undefined
      return timedOut ? 'timeout' : 'error'
    } finally {
      clearTimeout(timer)
      this.inFlight.delete(controller)
    }
  }

  /** POSTs the request to the candidate and reads its answer, no more than the body limit. */
  private async fetch(target: ShadowTarget, mirror: Mirror, signal: AbortSignal): Promise<{status: number; body: string}> {
    const base = target.urls[this.turn++ % target.urls.length]
    const url = new URL(base.pathname.replace(/\/$/, '') + mirror.path, base)
    const body = Buffer.from(mirror.body)
    const https = url.protocol === 'https:'
    const options: RequestOptions = {
      method: 'POST',
      agent: https ? this.agents.https : this.agents.http,
      headers: {'content-type': 'application/json', 'content-length': body.length, 'x-mlops-shadow': '1'},
      signal,
    }
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const request = (https ? httpsRequest : httpRequest)(url, options, resolve)
      // Errors after the answer started arrive on the response; any later one on the request is moot.
      request.on('error', reject)
      request.end(body)
    })
    response.on('error', () => {})
    const limit = this.options.bodyLimit
    if (Number(response.headers['content-length'] ?? 0) > limit) {
      response.destroy()
      throw new Error('the answer is larger than the body limit')
    }

    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of response as AsyncIterable<Buffer>) {
      size += chunk.length
      if (size > limit) {
        response.destroy()
        throw new Error('the answer is larger than the body limit')
      }

      chunks.push(chunk)
    }

    return {status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8')}
  }

  /** Reads the config file, unless the last read is still going. */
  private poll(path: string): void {
    this.reading ??= this.readConfig(path).finally(() => {
      this.reading = undefined
    })
  }

  /** Reads the config file and applies it when its text changed: absent or empty, off; malformed, off with one warning. */
  private async readConfig(path: string): Promise<void> {
    const read = await readBounded(path).then(
      text => ({text}),
      (error: unknown) => ({error: errorMessage(error)}),
    )
    const seen = 'error' in read ? `error ${read.error}` : read.text === null ? 'absent' : `text ${read.text}`
    if (seen === this.lastConfig || this.closed) return
    this.lastConfig = seen
    const {log} = this.options
    try {
      if ('error' in read) throw new Error(read.error)
      const target = read.text === null ? undefined : parseShadowConfig(read.text, this.options.defaults)
      if (!target && this.target)
        log('info', 'shadow off', {config: path, reason: read.text === null ? 'no config file' : 'the config file is empty'})
      if (target) log('info', 'shadow on', {config: path, url: describeTarget(target), sample: target.sample, timeoutMs: target.timeoutMs})
      this.target = target
      this.metrics.shadowOn(Boolean(target))
    } catch (error) {
      this.target = undefined
      this.metrics.shadowOn(false)
      log('warn', 'shadow config ignored: shadow off', {config: path, error: errorMessage(error)})
    }
  }
}

function hooksOf<T>(hooks: T | T[] | undefined): T[] {
  return hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks]
}

/** A file's text, at most MAX_CONFIG_BYTES (more: an error); null when it does not exist. */
async function readBounded(path: string): Promise<string | null> {
  const file = await open(path, 'r').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined
    throw error
  })
  if (!file) return null
  try {
    const buffer = Buffer.alloc(MAX_CONFIG_BYTES + 1)
    const {bytesRead} = await file.read(buffer, 0, buffer.length, 0)
    if (bytesRead > MAX_CONFIG_BYTES) throw new Error(`the file is larger than ${MAX_CONFIG_BYTES} bytes`)
    return buffer.subarray(0, bytesRead).toString('utf8')
  } finally {
    await file.close()
  }
}
