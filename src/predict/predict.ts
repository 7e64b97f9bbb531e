import {readFile} from 'node:fs/promises'
import {text as readStream} from 'node:stream/consumers'

import {formatTable} from '../cli/table.js'
import {ExpectationError, NotFoundError, UnavailableError, UsageError} from '../errors.js'
import type {Endpoint, TargetIO} from '../targets/target.js'
import {parseRows} from './input.js'
import {type Answer, type LatencyReport, type PredictRequest, loadTest, sendOnce} from './load.js'

/** Where the rows come from: --data, else --file, else what is piped on stdin. */
export interface RowsSource {
  data?: string
  file?: string
  stdin: NodeJS.ReadableStream & {isTTY?: boolean}
}

export interface PredictOptions {
  rows: RowsSource
  /** The original protocol's path: /predict or /predict/label. */
  endpoint: string
  protocol: PredictRequest['protocol']
  /** --protocol v2: the model's name (its input name is asked of the server). */
  model?: string
  /** More than one: a load test with `concurrency` requests in flight, and its latency figures. */
  requests: number
  concurrency: number
  /** The prediction the answer must equal (a label, a number, or JSON): else exit 11. */
  expect?: string
}

export interface PredictResult {
  url: string
  /** --target k8s: the pod the requests went to through the port-forward. */
  pod?: string
  response: unknown
  load?: LatencyReport
}

export interface PredictOutcome {
  result: PredictResult
  /** Stopped by Ctrl-C during a load test: the result holds the figures so far. */
  interrupted: boolean
}

/** How predict shows the answer (before judging it: a mismatch still shows what the server said). */
export type PredictIO = Pick<TargetIO, 'log' | 'note' | 'progress'>

/**
 * Reads the rows, opens the endpoint (given how many connections the requests
 * keep in flight), sends one request or a load test, shows the answer and its
 * figures, then checks it: a refusal, an --expect mismatch (exit 11) or failed
 * requests in a load test are errors. The endpoint is closed in every case.
 */
export async function predict(
  options: PredictOptions,
  openEndpoint: (connections: number) => Promise<Endpoint>,
  io: PredictIO,
): Promise<PredictOutcome> {
  const rows = parseRows(await rowsText(options.rows), rowsSourceName(options.rows))
  const endpoint = await openEndpoint(Math.min(options.requests, options.concurrency))
  try {
    const outcome = await send(options, endpoint.url, rows, io)
    return endpoint.pod ? {...outcome, result: {...outcome.result, pod: endpoint.pod}} : outcome
  } catch (error) {
    // Through a tunnel (a port-forward), what the API server or the node said is the useful part.
    if (endpoint.lastError && error instanceof UnavailableError) throw endpoint.lastError
    throw error
  } finally {
    await endpoint.close()
  }
}

/** The answer as a person reads it: the response as JSON, then the load test's figures as a table. */
export function formatAnswer(response: unknown, load: LatencyReport | undefined): string {
  const lines = [JSON.stringify(response)]
  if (load) {
    lines.push(
      formatTable(
        ['REQUESTS', 'ERRORS', 'REQ/S', 'P50', 'P95', 'P99', 'MAX'],
        [
          [
            String(load.requests),
            String(load.errors),
            load.requestsPerSecond.toFixed(0),
            ...[load.p50, load.p95, load.p99, load.max].map(ms => `${ms.toFixed(2)} ms`),
          ],
        ],
      ),
    )
  }

  return lines.join('\n')
}

async function send(options: PredictOptions, url: string, rows: number[][], io: PredictIO): Promise<PredictOutcome> {
  const request = await buildRequest(options, url, rows)
  const {answer, load, interrupted} =
    options.requests > 1 ? await sendMany(request, options, io) : {answer: await sendOnce(request), load: undefined, interrupted: false}
  const response = acceptedBody(answer)
  io.log(formatAnswer(response, load))
  if (interrupted) {
    io.note(`interrupted after ${load!.requests} of ${options.requests} requests`)
    return {result: {url, response, load}, interrupted}
  }

  if (options.expect !== undefined) checkExpected(response, options.expect)
  if (load && load.errors > 0) throw new UnavailableError(`${load.errors} of ${load.requests} requests failed`)
  return {result: {url, response, load}, interrupted}
}

async function buildRequest(options: PredictOptions, url: string, rows: number[][]): Promise<PredictRequest> {
  const request: PredictRequest = {url, endpoint: options.endpoint, protocol: options.protocol, rows}
  return request.protocol === 'v2' ? {...request, ...(await v2Target(url, options.model))} : request
}

/** The load test, with the count on a terminal as it goes; Ctrl-C stops sending and still gives the figures so far. */
async function sendMany(
  request: PredictRequest,
  options: PredictOptions,
  io: PredictIO,
): Promise<{answer: Answer; load: LatencyReport; interrupted: boolean}> {
  const stop = new AbortController()
  const interrupt = () => stop.abort()
  process.once('SIGINT', interrupt)
  const progress = await io.progress()
  progress.start(`Sending ${options.requests} requests`)
  let shown = 0
  try {
    const {last, interrupted, ...load} = await loadTest(request, options.requests, options.concurrency, {
      signal: stop.signal,
      onProgress(sent, errors) {
        if (Date.now() - shown < 100) return
        shown = Date.now()
        progress.text(`Sent ${sent} of ${options.requests} requests, ${errors} errors (Ctrl-C stops and shows the figures so far)`)
      },
    })
    return {answer: last!, load, interrupted}
  } finally {
    progress.stop()
    process.off('SIGINT', interrupt)
  }
}

/** The answer's body, unless the server refused the request (4xx: exit 2) or failed it (5xx: exit 7). */
export function acceptedBody(answer: Answer): unknown {
  if (answer.status < 400) return answer.body
  const message = (answer.body as {error?: string})?.error ?? JSON.stringify(answer.body)
  if (answer.status >= 500)
    throw new UnavailableError(`the server answered ${answer.status}: ${message}`, {suggestion: 'is it ready? curl URL/ready'})
  throw new UsageError(`the server refused the request (${answer.status}): ${message}`)
}

function rowsSourceName(source: RowsSource): string {
  return source.data !== undefined ? '--data' : (source.file ?? 'stdin')
}

async function rowsText(source: RowsSource): Promise<string> {
  if (source.data !== undefined) return source.data
  if (source.file !== undefined) {
    return readFile(source.file, 'utf8').catch(() => {
      throw new NotFoundError(`input file ${source.file} cannot be read`)
    })
  }

  if (source.stdin.isTTY) throw new UsageError('no input rows: pass --data JSON, --file PATH, or pipe rows on stdin')
  return readStream(source.stdin)
}

/** The model's name and input for the Open Inference Protocol, from the server's own metadata. */
async function v2Target(url: string, model: string | undefined): Promise<{model: string; input: string}> {
  if (!model) throw new UsageError('--protocol v2 needs the model name: pass --model-name NAME')
  let metadata: {inputs?: Array<{name: string}>}
  try {
    const response = await fetch(new URL(`/v2/models/${model}`, url))
    if (response.status === 404) throw new NotFoundError(`the server does not serve a model named ${model}`)
    metadata = (await response.json()) as typeof metadata
  } catch (error) {
    if (error instanceof NotFoundError) throw error
    throw new UnavailableError(`cannot reach ${url}: ${(error as Error).message}`)
  }

  return {model, input: metadata.inputs?.[0]?.name ?? 'input'}
}

/** The prediction (original protocol) or the first output's data (v2) against --expect, as JSON or as a plain label. */
function checkExpected(response: unknown, expected: string): void {
  const prediction =
    (response as {prediction?: unknown; outputs?: Array<{data: unknown}>})?.prediction ??
    (response as {outputs?: Array<{data: unknown}>})?.outputs?.[0]?.data
  let wanted: unknown = expected
  try {
    wanted = JSON.parse(expected)
  } catch {
    // a plain label
  }

  const same = JSON.stringify(prediction) === JSON.stringify(wanted) || String(prediction) === expected
  if (!same) throw new ExpectationError(`prediction ${JSON.stringify(prediction)} does not match --expect ${expected}`)
}
