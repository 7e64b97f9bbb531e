import {Agent, request as httpRequest} from 'node:http'
import {request as httpsRequest} from 'node:https'

import {UnavailableError, UsageError, errorMessage} from '../errors.js'

export interface PredictRequest {
  url: string
  endpoint: string
  protocol: 'original' | 'v2'
  rows: number[][]
  /** v2 only: the model's name and input name. */
  model?: string
  input?: string
}

export interface LatencyReport {
  requests: number
  errors: number
  seconds: number
  requestsPerSecond: number
  p50: number
  p95: number
  p99: number
  max: number
}

export interface Answer {
  status: number
  body: unknown
}

/** One request body, in the protocol's shape. */
function bodyOf(request: PredictRequest): string {
  if (request.protocol === 'original') return JSON.stringify({data: request.rows})
  return JSON.stringify({inputs: [{name: request.input ?? 'float_input', shape: [request.rows.length, request.rows[0].length], datatype: 'FP32', data: request.rows.flat()}]})
}

function targetUrl(request: PredictRequest): URL {
  let base: URL
  try {
    base = new URL(request.url)
  } catch {
    throw new UsageError(`invalid --url ${request.url}: use http://HOST:PORT`)
  }

  const path = request.protocol === 'v2' ? `/v2/models/${request.model}/infer` : request.endpoint
  return new URL(path, base)
}

/** Sends one request and returns the answer (any status). Unreachable → exit 7. */
export async function sendOnce(request: PredictRequest, agent?: Agent): Promise<Answer & {ms: number}> {
  const url = targetUrl(request)
  const body = bodyOf(request)
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest
  const started = process.hrtime.bigint()
  return new Promise((resolve, reject) => {
    const req = send(url, {method: 'POST', agent, headers: {'content-type': 'application/json', 'content-length': Buffer.byteLength(body)}}, response => {
      const chunks: Buffer[] = []
      response.on('data', chunk => chunks.push(chunk))
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed: unknown = text
        try {
          parsed = JSON.parse(text)
        } catch {
          // not JSON: keep the text
        }

        resolve({status: response.statusCode ?? 0, body: parsed, ms: Number(process.hrtime.bigint() - started) / 1e6})
      })
    })
    req.setTimeout(30_000, () => req.destroy(Object.assign(new Error('no answer in 30 s'), {code: 'ETIMEDOUT'})))
    req.on('error', error => reject(new UnavailableError(`cannot reach ${url.origin}: ${errorMessage(error)}`, {suggestion: 'check --url (or that the deployment is up: mlops status)'})))
    req.end(body)
  })
}

/** N requests, `concurrency` in flight on keep-alive connections: throughput and latency percentiles. */
export async function loadTest(request: PredictRequest, count: number, concurrency: number): Promise<LatencyReport & {last?: Answer}> {
  const agent = new Agent({keepAlive: true, maxSockets: concurrency})
  const latencies: number[] = []
  let errors = 0
  let next = 0
  let last: Answer | undefined
  const started = process.hrtime.bigint()
  await Promise.all(Array.from({length: Math.min(concurrency, count)}, async () => {
    while (next < count) {
      next++
      const answer = await sendOnce(request, agent)
      latencies.push(answer.ms)
      if (answer.status >= 400) errors++
      last = answer
    }
  }))
  agent.destroy()
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  latencies.sort((a, b) => a - b)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]
  return {requests: latencies.length, errors, seconds, requestsPerSecond: latencies.length / seconds, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: latencies.at(-1) ?? 0, last}
}
