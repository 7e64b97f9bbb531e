import {Args, Flags} from '@oclif/core'

import {BaseCommand, type ErrorJson} from '../../cli/base-command.js'
import {type Logger, createLogger, logFormatFlag, resolveLogFormat} from '../../cli/log.js'
import {storeFlags, storeFor} from '../../cli/store-flags.js'
import {LOADER_ENV, LOG_EVENTS, type LoaderSummary, TERMINATION_LOG} from '../../pod/contract.js'
import {pullModel, terminationLogPath, writeTerminationSummary} from '../../pod/loader.js'
import type {PullResult} from '../../store/model-store.js'
import {formatBytes} from '../../util/text.js'

export default class ModelPull extends BaseCommand<typeof ModelPull> {
  static summary = "Download a model version, verified, to a local path (the loader's job)."

  static description = [
    `Resolves REF (version, alias or latest), downloads into a temporary file beside the destination with parallel ranged`,
    `reads, verifies size and sha256 (and the store's crc32c), then renames it into place: the destination is never partial`,
    `or corrupt. When it already holds the same sha256, nothing is downloaded ("up to date"). Transient failures and stalls`,
    `are retried for store.timeout seconds, then exit code 7.\n\n`,
    `As a Kubernetes initContainer (the loader): when /dev/termination-log exists, or with --termination-log, a one-line JSON`,
    `summary is written there (ref, version, sha256, bytes, seconds and uptime: seconds since the process started; or the`,
    `error, its code and exit code), so that deploy can say why a loader failed; --log-format json writes structured progress`,
    `lines on stderr.`,
  ]
    .join(' ')
    .replace('\n\n ', '\n\n')

  static examples = [
    '<%= config.bin %> <%= command.id %> iris@3 --to /workdir/model.onnx',
    '<%= config.bin %> <%= command.id %> iris@prod --to models/ --labels-to models/labels.json --json',
    'MLOPS_LOG_FORMAT=json <%= config.bin %> <%= command.id %> iris@3 --to /workdir/model.onnx --termination-log /tmp/summary.json',
  ]

  static args = {
    ref: Args.string({description: 'NAME@REF (REF: version, alias or latest).', required: true}),
  }

  static flags = {
    to: Flags.string({summary: 'Destination file, or an existing folder.', required: true}),
    'labels-to': Flags.string({summary: 'Also download the labels to this file or folder.'}),
    'reference-to': Flags.string({summary: "Also write the version's reference set (verified) to this file or folder."}),
    'termination-log': Flags.string({
      summary: `Write a one-line JSON summary here (default: ${TERMINATION_LOG} when it exists).`,
      env: LOADER_ENV.terminationLog,
    }),
    'log-format': logFormatFlag('none'),
    ...storeFlags,
  }

  private started = Date.now()

  async run(): Promise<PullResult> {
    this.started = Date.now()
    const {flags} = this
    const format = resolveLogFormat(flags, undefined)
    const result = await pullModel(
      {
        ref: this.args.ref,
        destination: flags.to,
        labelsDestination: flags['labels-to'],
        referenceDestination: flags['reference-to'],
        terminationLog: terminationLogPath(flags['termination-log']),
      },
      () => storeFor(this.project, flags),
      {log: format && createLogger(format, 'loader'), progress: () => this.progress(), note: message => this.logToStderr(message)},
    )
    // With structured logs (a container), the log lines say it all: stdout stays free of plain text.
    if (format === 'json') return result
    const what = `${result.name}@${result.version}`
    this.log(
      result.skipped
        ? `${what} up to date at ${result.path} (sha256:${result.sha256.slice(0, 12)})`
        : `${what} → ${result.path}  ${formatBytes(result.bytes)} in ${result.seconds.toFixed(2)}s  sha256:${result.sha256.slice(0, 12)} verified`,
    )
    if (result.labelsPath) this.log(`labels → ${result.labelsPath}`)
    if (result.referencePath) this.log(`reference set → ${result.referencePath}`)
    return result
  }

  /** The failure as the base command reports it and exits with it, in the termination summary too. */
  protected recordFailure(failure: ErrorJson['error']): void {
    // Flags may not have parsed (one way to fail): the environment still says where the summary goes.
    const path = terminationLogPath(this.flags ? this.flags['termination-log'] : process.env[LOADER_ENV.terminationLog])
    const {code, exitCode, message} = failure
    const summary: LoaderSummary = {
      ok: false,
      ref: this.args?.ref,
      seconds: (Date.now() - this.started) / 1000,
      error: {code, exitCode, message},
    }
    writeTerminationSummary(path, summary, warning => this.logToStderr(warning))
  }

  protected failureLog(): {log: Logger; msg: string} | undefined {
    return resolveLogFormat(this.flags, undefined) === 'json'
      ? {log: createLogger('json', 'loader'), msg: LOG_EVENTS.pullFailed}
      : undefined
  }
}
