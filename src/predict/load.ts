import {UnavailableError, UsageError, errorMessage} from '../errors.js'
import {Http1Connection, type RawResponse, requestBytes} from '../util/http1.js'

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
  return JSON.stringify({
    inputs: [
      {
        name: request.input ?? 'float_input',
        shape: [request.rows.length, request.rows[0].length],
        datatype: 'FP32',
        data: request.rows.flat(),
      },
    ],
  })
}

function targetUrl(request: PredictRequest): URL {
  let base: URL
  try {
    base = new URL(request.url)
  } catch {
    throw new UsageError(`invalid --url ${request.url}: use http://HOST:PORT`)
  }

  if (base.protocol !== 'http:' && base.protocol !== 'https:')
    throw new UsageError(`invalid --url ${request.url}: only http:// and https:// are served`, {suggestion: 'use http://HOST:PORT'})

  const path = request.protocol === 'v2' ? `/v2/models/${request.model}/infer` : request.endpoint
  return new URL(path, base)
}

function parseBody(body: Buffer): unknown {
  const text = body.toString('utf8')
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/**
 * N requests, `concurrency` in flight, each on its own keep-alive connection
 * (a connection the server closes is opened again): throughput and latency
 * percentiles. Requests that fail on the wire count as errors; a server that
 * cannot be reached at all → exit 7.
 */
export async function loadTest(
  request: PredictRequest,
  count: number,
  concurrency: number,
  options: {signal?: AbortSignal; onProgress?: (sent: number, errors: number) => void} = {},
): Promise<LatencyReport & {last?: Answer; interrupted: boolean}> {
  const url = targetUrl(request)
  const wire = requestBytes('POST', url, {'content-type': 'application/json'}, Buffer.from(bodyOf(request)))
  const latencies: number[] = []
  let errors = 0
  let next = 0
  let last: RawResponse | undefined
  let lastError: unknown
  const unreachable = (error: unknown) =>
    new UnavailableError(`cannot reach ${url.origin}: ${errorMessage(error)}`, {
      suggestion: 'check --url (or that the deployment is up: mlops status)',
    })
  const started = process.hrtime.bigint()
  await Promise.all(
    Array.from({length: Math.min(concurrency, count)}, async () => {
      let connection: Http1Connection | undefined
      // Stopped by the signal (Ctrl-C), or before spinning on a server that never answered at all.
      while (next < count && !options.signal?.aborted && !(latencies.length === 0 && errors >= UNREACHABLE_AFTER)) {
        next++
        const sent = process.hrtime.bigint()
        try {
          if (!connection?.reusable) {
            connection?.close()
            connection = await Http1Connection.open(url)
          }

          const response = await connection.send(wire)
          latencies.push(Number(process.hrtime.bigint() - sent) / 1e6)
          if (response.status >= 400) errors++
          last = response
          options.onProgress?.(latencies.length, errors)
        } catch (error) {
          errors++
          lastError = error
          connection?.close()
          connection = undefined
        }
      }

      connection?.close()
    }),
  )
  if (latencies.length === 0) throw unreachable(lastError)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  latencies.sort((a, b) => a - b)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]
  const interrupted = next < count
  return {
    interrupted,
    requests: interrupted ? latencies.length + errors : count,
    errors,
    seconds,
    requestsPerSecond: latencies.length / seconds,
    p50: at(0.5),
    p95: at(0.95),
    p99: at(0.99),
    max: latencies.at(-1) ?? 0,
    last: last && {status: last.status, body: parseBody(last.body)},
  }
}

/** Failed attempts, with not one answer yet, after which the server counts as unreachable. */
const UNREACHABLE_AFTER = 20

/** Sends one request and returns the answer (any status), on the same client as the load test. Unreachable → exit 7. */
export async function sendOnce(request: PredictRequest): Promise<Answer & {ms: number}> {
  const {last, max} = await loadTest(request, 1, 1)
  return {...last!, ms: max}
}
