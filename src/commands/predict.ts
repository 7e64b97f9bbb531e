import {Flags} from '@oclif/core'
import {readFile} from 'node:fs/promises'
import {text as readStream} from 'node:stream/consumers'

import {fromEnvironment} from '../cli/flag-rules.js'
import {contextFlag, namespaceFlagLong, targetFlag} from '../cli/flags.js'
import {formatTable} from '../cli/table.js'
import {TargetCommand} from '../cli/target-command.js'
import {ExitCode, ExpectationError, NotFoundError, UnavailableError, UsageError} from '../errors.js'
import {parseRows} from '../predict/input.js'
import {type Answer, type LatencyReport, type PredictRequest, loadTest, sendOnce} from '../predict/load.js'
import type {Endpoint} from '../targets/target.js'

export interface PredictResult {
  url: string
  /** --target k8s: the pod the requests went to through the port-forward. */
  pod?: string
  response: unknown
  load?: LatencyReport
}

export default class Predict extends TargetCommand<typeof Predict> {
  static summary = 'Send test requests to a model server and show the answer, with latency figures under load.'

  static description = [
    `Rows come from --data (JSON), --file (JSON: {"data": [...]} or a list of rows; or CSV, one row per line, a header line skipped) or stdin.`,
    `With -n, sends N requests with --concurrency in flight and reports requests/s and p50/p95/p99 latency.`,
    `--expect makes it exit 11 when the prediction differs (for CI smoke tests).`,
  ].join(' ')

  static examples = [
    "<%= config.bin %> <%= command.id %> --url http://127.0.0.1:8000 --data '[[6.3, 3.3, 6.0, 2.5]]'",
    '<%= config.bin %> <%= command.id %> --url http://127.0.0.1:8000 --file rows.csv --endpoint /predict',
    "<%= config.bin %> <%= command.id %> --target k8s --namespace iris --data '[[6.3, 3.3, 6.0, 2.5]]' -n 500 -c 16",
    "<%= config.bin %> <%= command.id %> --url http://127.0.0.1:8000 --data '[6.3, 3.3, 6.0, 2.5]' -n 2000 --concurrency 32 --expect virginica",
    'echo \'{"data": [[5.1, 3.5, 1.4, 0.2]]}\' | <%= config.bin %> <%= command.id %> --url http://127.0.0.1:8000 --protocol v2 --model-name iris',
  ]

  static flags = {
    url: Flags.string({summary: 'Base URL of the model server.', env: 'MLOPS_PREDICT_URL'}),
    // Where mlops deploy started the server; k8s goes through a port-forward to a ready pod.
    target: targetFlag,
    // -n is --requests here, so --namespace has no short form.
    namespace: namespaceFlagLong,
    context: contextFlag,
    data: Flags.string({summary: 'Rows as JSON.', exclusive: ['file']}),
    file: Flags.string({summary: 'Rows from a JSON or CSV file.', exclusive: ['data']}),
    endpoint: Flags.string({
      summary: 'Path for the original protocol.',
      default: '/predict/label',
      options: ['/predict', '/predict/label'],
    }),
    protocol: Flags.string({
      summary: 'original (the model-load API) or v2 (Open Inference Protocol).',
      default: 'original',
      options: ['original', 'v2'],
    }),
    'model-name': Flags.string({summary: 'Model name for --protocol v2 (default: model.name in mlops.yaml).'}),
    requests: Flags.integer({char: 'n', summary: 'Send this many requests and report latency figures.', default: 1, min: 1}),
    concurrency: Flags.integer({char: 'c', summary: 'Requests in flight at once (with -n).', default: 1, min: 1}),
    expect: Flags.string({summary: 'Exit 11 unless the prediction equals this (a label, a number, or JSON).'}),
  }

  async run(): Promise<PredictResult> {
    const {flags} = this
    const rows = parseRows(await this.rowsText(), flags.data !== undefined ? '--data' : (flags.file ?? 'stdin'))
    const url = this.explicitUrl()
    if (url) {
      this.refuseForeign('--url', [])
      return this.predict({url, close: async () => {}}, rows)
    }

    const {target} = await this.target()
    const endpoint = await target.endpoint({
      namespace: flags.namespace,
      context: flags.context,
      connections: Math.min(flags.requests, flags.concurrency),
    })
    try {
      const result = await this.predict(endpoint, rows)
      return endpoint.pod ? {...result, pod: endpoint.pod} : result
    } finally {
      await endpoint.close()
    }
  }

  /**
   * --url, unless a --target flag overrides a URL from MLOPS_PREDICT_URL. Both
   * given as flags name two servers: exit 2. A value from the environment
   * (MLOPS_TARGET exported for deploy) never conflicts with a flag.
   */
  private explicitUrl(): string | undefined {
    const {url, target} = this.flags
    if (url === undefined || target === undefined) return url
    const urlFromEnv = fromEnvironment(Predict.flags.url, url)
    const targetFromEnv = fromEnvironment(Predict.flags.target, target)
    if (!urlFromEnv && !targetFromEnv) throw new UsageError('--url and --target each name a server: pass one of them')
    return urlFromEnv && !targetFromEnv ? undefined : url
  }

  private async predict(endpoint: Endpoint, rows: number[][]): Promise<PredictResult> {
    try {
      return await this.send(endpoint.url, rows)
    } catch (error) {
      // Through a tunnel (a port-forward), what the API server or the node said is the useful part.
      if (endpoint.lastError && error instanceof UnavailableError) throw endpoint.lastError
      throw error
    }
  }

  private interrupted = false

  private async send(url: string, rows: number[][]): Promise<PredictResult> {
    const {flags} = this
    const request: PredictRequest = {url, endpoint: flags.endpoint, protocol: flags.protocol as PredictRequest['protocol'], rows}
    if (request.protocol === 'v2') Object.assign(request, await this.v2Target(url))
    let answer: Answer
    let load: LatencyReport | undefined
    if (flags.requests > 1) {
      // Ctrl-C stops sending and still prints the figures so far; a terminal shows the count as it goes.
      const stop = new AbortController()
      const interrupt = () => stop.abort()
      process.once('SIGINT', interrupt)
      const progress = await this.progress()
      progress.start(`Sending ${flags.requests} requests`)
      let shown = 0
      try {
        const report = await loadTest(request, flags.requests, flags.concurrency, {
          signal: stop.signal,
          onProgress(sent, errors) {
            if (Date.now() - shown < 100) return
            shown = Date.now()
            progress.text(`Sent ${sent} of ${flags.requests} requests, ${errors} errors (Ctrl-C stops and shows the figures so far)`)
          },
        })
        answer = report.last!
        const {last: _, interrupted, ...figures} = report
        load = figures
        if (interrupted) this.interrupted = true
      } finally {
        progress.stop()
        process.off('SIGINT', interrupt)
      }
    } else {
      answer = await sendOnce(request)
    }

    if (answer.status >= 400) {
      const message = (answer.body as {error?: string})?.error ?? JSON.stringify(answer.body)
      if (answer.status >= 500)
        throw new UnavailableError(`the server answered ${answer.status}: ${message}`, {suggestion: 'is it ready? curl URL/ready'})
      throw new UsageError(`the server refused the request (${answer.status}): ${message}`)
    }

    const response = answer.body
    this.log(JSON.stringify(response))
    if (load) {
      this.log(
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

    if (this.interrupted) {
      this.logToStderr(`interrupted after ${load!.requests} of ${flags.requests} requests`)
      // The shell's convention for a run stopped by Ctrl-C (128 + SIGINT).
      process.exitCode = ExitCode.INTERRUPTED
      return {url, response, load}
    }

    if (flags.expect !== undefined) this.check(response, flags.expect)
    if (load && load.errors > 0) throw new UnavailableError(`${load.errors} of ${load.requests} requests failed`)
    return {url, response, load}
  }

  private async rowsText(): Promise<string> {
    if (this.flags.data !== undefined) return this.flags.data
    if (this.flags.file !== undefined) {
      return readFile(this.flags.file, 'utf8').catch(() => {
        throw new NotFoundError(`input file ${this.flags.file} cannot be read`)
      })
    }

    if (process.stdin.isTTY) throw new UsageError('no input rows: pass --data JSON, --file PATH, or pipe rows on stdin')
    return readStream(process.stdin)
  }

  /** The model's name and input for the Open Inference Protocol, from the server's own metadata. */
  private async v2Target(url: string): Promise<{model: string; input: string}> {
    const model = this.flags['model-name'] ?? this.project.values.model?.name
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

  private check(response: unknown, expected: string): void {
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
}
