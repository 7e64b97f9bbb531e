import {Args, Flags} from '@oclif/core'
import {existsSync, writeFileSync} from 'node:fs'

import {BaseCommand} from '../../cli/base-command.js'
import {type Logger, createLogger} from '../../cli/log.js'
import {storeFlags, storeFor} from '../../cli/store-flags.js'
import {isMlopsError, systemError} from '../../errors.js'
import {LOADER_ENV, LOG_EVENTS, TERMINATION_LOG} from '../../pod/contract.js'
import type {PullResult} from '../../store/model-store.js'
import {LATEST, parseModelRef} from '../../store/names.js'
import {redactJson} from '../../util/redact.js'
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
    'termination-log': Flags.string({
      summary: `Write a one-line JSON summary here (default: ${TERMINATION_LOG} when it exists).`,
      env: LOADER_ENV.terminationLog,
    }),
    'log-format': Flags.string({
      summary: 'Structured progress lines on stderr: json or text (default: none).',
      options: ['json', 'text'],
      env: LOADER_ENV.logFormat,
    }),
    ...storeFlags,
  }

  private started = Date.now()

  async run(): Promise<PullResult> {
    this.started = Date.now()
    const ref = parseModelRef(this.args.ref, {defaultRef: LATEST})
    const log = this.logger()
    const store = await storeFor(this.project, this.flags)
    const progress = await this.progress()
    progress.start(`Resolving ${this.args.ref} in ${store.uri}`)
    log?.('info', 'resolving', {ref: this.args.ref, store: store.uri})
    try {
      const result = await store.pull({
        ref,
        destination: this.flags.to,
        labelsDestination: this.flags['labels-to'],
        onResolved(manifest) {
          progress.text(`Downloading ${manifest.name}@${manifest.version}`)
          log?.('info', LOG_EVENTS.resolved, {ref: `${manifest.name}@${manifest.version}`, sha256: manifest.sha256, size: manifest.size})
        },
        onProgress: progress.bytes('Downloading'),
      })
      progress.stop()
      log?.('info', result.skipped ? LOG_EVENTS.upToDate : LOG_EVENTS.verified, {
        path: result.path,
        sha256: result.sha256,
        bytes: result.bytes,
        seconds: result.seconds,
      })
      // uptime: seconds since this process started, node's start-up included: a pod's loader lead time.
      this.writeTerminationLog({ok: true, ...result, uptime: Number(process.uptime().toFixed(3))})
      const what = `${result.name}@${result.version}`
      // With structured logs (a container), the log line above says it all: stdout stays free of plain text.
      if (this.flags['log-format'] !== 'json')
        this.log(
          result.skipped
            ? `${what} up to date at ${result.path} (sha256:${result.sha256.slice(0, 12)})`
            : `${what} → ${result.path}  ${formatBytes(result.bytes)} in ${result.seconds.toFixed(2)}s  sha256:${result.sha256.slice(0, 12)} verified`,
        )
      if (result.labelsPath && this.flags['log-format'] !== 'json') this.log(`labels → ${result.labelsPath}`)
      return result
    } finally {
      progress.stop()
    }
  }

  protected async catch(error: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<never> {
    const known = isMlopsError(error) ? error : systemError(error)
    const summary = known
      ? {code: known.code, exitCode: known.exitCode, message: known.message}
      : {code: error.oclif?.exit === 2 ? 'USAGE' : 'UNEXPECTED', exitCode: error.oclif?.exit ?? 1, message: error.message.split('\n')[0]}
    this.writeTerminationLog({ok: false, ref: this.args?.ref, seconds: (Date.now() - this.started) / 1000, error: summary})
    return super.catch(error)
  }

  protected failureLog(): {log: Logger; msg: string} | undefined {
    const format = (this.flags ?? {})['log-format'] ?? process.env.MLOPS_LOG_FORMAT
    return format === 'json' ? {log: createLogger('json', 'loader'), msg: LOG_EVENTS.pullFailed} : undefined
  }

  private logger(): Logger | undefined {
    // Flags may not have parsed (one way to fail): read what is there.
    const format = (this.flags ?? {})['log-format']
    return format === 'json' || format === 'text' ? createLogger(format, 'loader') : undefined
  }

  /** One JSON line, for `kubectl describe` and for deploy's diagnosis of a failed loader. */
  private writeTerminationLog(summary: Record<string, unknown>): void {
    const path = (this.flags ?? {})['termination-log'] ?? (existsSync(TERMINATION_LOG) ? TERMINATION_LOG : undefined)
    if (!path) return
    try {
      writeFileSync(path, `${JSON.stringify(redactJson(summary))}\n`)
    } catch (error) {
      this.logToStderr(`warning: could not write the termination summary to ${path}: ${(error as Error).message}`)
    }
  }
}
