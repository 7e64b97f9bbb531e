import {Flags} from '@oclif/core'
import cluster from 'node:cluster'

import {BaseCommand, describeError} from '../cli/base-command.js'
import {type Logger, createLogger, logFormatFlag, resolveLogFormat, terminalLogFormat} from '../cli/log.js'
import {API_ENV, LOG_EVENTS} from '../pod/contract.js'
import {reportFailure} from '../serve/pool.js'
import {DEFAULT_TOLERANCE, parseTolerance} from '../serve/parity.js'
import {type ServeOptions, type ServeResult, serve} from '../serve/serve.js'
import {
  DEFAULT_SHADOW_QUEUE,
  DEFAULT_SHADOW_SAMPLE,
  DEFAULT_SHADOW_TIMEOUT_MS,
  parseShadowSample,
  parseShadowTimeout,
  parseShadowUrl,
} from '../serve/shadow.js'

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
    `With --shadow-url or --shadow-config, a sample of prediction requests is also sent to a candidate server once the`,
    `client has its answer; the candidate's answers are compared with this server's and counted in /metrics`,
    `(mlops_shadow_requests_total), never returned.`,
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %> --model model.onnx --labels labels.json',
    'MODEL_FILEPATH=/workdir/model.onnx PORT=8000 <%= config.bin %> <%= command.id %>',
    "<%= config.bin %> <%= command.id %> --model iris.onnx --name iris --model-version 3 --sample '[5.1, 3.5, 1.4, 0.2]'",
    'MLOPS_WORKERS=4 <%= config.bin %> <%= command.id %> --model model.onnx',
    '<%= config.bin %> <%= command.id %> --model model.onnx --shadow-url http://candidate:8000 --shadow-sample 0.1',
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
    reference: Flags.string({
      summary:
        "The version's reference set (JSON, as the loader writes it): answered at warm-up: serve exits 8 when an answer differs from the recorded one beyond --reference-tolerance.",
      env: API_ENV.reference,
    }),
    'reference-tolerance': Flags.string({
      summary: 'Largest difference of any number in an answer that still counts as the recorded one.',
      env: 'MLOPS_REFERENCE_TOLERANCE',
      default: String(DEFAULT_TOLERANCE),
    }),
    check: Flags.boolean({
      summary:
        'Load the model, warm up and answer the reference set, print the result and exit without listening (what mlops image check runs).',
    }),
    'shadow-url': Flags.string({
      summary:
        "Candidate server to mirror a sample of prediction requests to (http(s)://HOST[:PORT][/PATH], no credentials): its answers are compared with this server's and counted in /metrics, never returned.",
      env: 'MLOPS_SHADOW_URL',
      exclusive: ['shadow-config'],
      helpGroup: 'SHADOW',
    }),
    'shadow-config': Flags.string({
      summary:
        'JSON file {"url": ..., "sample": ..., "timeoutMs": ...} naming the candidate, read again when it changes (absent or empty: no shadow; malformed: no shadow and a warning).',
      env: 'MLOPS_SHADOW_CONFIG',
      exclusive: ['shadow-url'],
      helpGroup: 'SHADOW',
    }),
    'shadow-sample': Flags.string({
      summary: 'Share of prediction requests mirrored to the candidate, above 0 and at most 1.',
      env: 'MLOPS_SHADOW_SAMPLE',
      default: String(DEFAULT_SHADOW_SAMPLE),
      helpGroup: 'SHADOW',
    }),
    'shadow-timeout': Flags.string({
      summary: 'How long the candidate may take to answer a mirrored request: 500ms, 2s (a bare number is seconds); at most 60s.',
      env: 'MLOPS_SHADOW_TIMEOUT',
      default: `${DEFAULT_SHADOW_TIMEOUT_MS / 1000}s`,
      helpGroup: 'SHADOW',
    }),
    'shadow-queue': Flags.integer({
      summary: 'Mirrored requests in flight at most, per worker; a sampled request beyond them is dropped (and counted).',
      env: 'MLOPS_SHADOW_QUEUE',
      default: DEFAULT_SHADOW_QUEUE,
      min: 1,
      max: 10_000,
      helpGroup: 'SHADOW',
    }),
    'log-format': logFormatFlag('text on a terminal, json otherwise'),
  }

  protected failureLog(): {log: Logger; msg: string} | undefined {
    return resolveLogFormat(this.flags, terminalLogFormat()) === 'json'
      ? {log: createLogger('json', 'serve'), msg: LOG_EVENTS.serveFailed}
      : undefined
  }

  async run(): Promise<ServeResult> {
    const {flags} = this
    return serve(
      {
        modelPath: flags.model,
        labelsPath: flags.labels,
        name: flags.name,
        version: flags['model-version'],
        sample: flags.sample,
        labelFrom: flags['label-from'] as ServeOptions['labelFrom'],
        sha256: flags.sha256,
        referencePath: flags.reference,
        referenceTolerance: parseTolerance(flags['reference-tolerance']),
        check: flags.check,
        host: flags.host,
        port: flags.port,
        workers: flags.workers,
        intraOpThreads: flags['intra-op-threads'],
        bodyLimit: flags['max-body-bytes'],
        inFlightBytes: flags['max-inflight-bytes'],
        shadow: {
          url: flags['shadow-url'] === undefined ? undefined : parseShadowUrl(flags['shadow-url']),
          configPath: flags['shadow-config'] || undefined,
          sample: parseShadowSample(flags['shadow-sample']),
          timeoutMs: parseShadowTimeout(flags['shadow-timeout']),
          queue: flags['shadow-queue'],
        },
      },
      createLogger(resolveLogFormat(flags, terminalLogFormat()), 'serve'),
    )
  }

  /** A worker's failure goes to the primary, which says it once for the pod. */
  protected async catch(error: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<never> {
    if (!cluster.isWorker) return super.catch(error)
    const described = describeError(error)
    await reportFailure(described)
    this.exit(described.exitCode)
  }
}
