import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {storeFlags, storeFor} from '../../cli/store-flags.js'
import type {PullResult} from '../../store/model-store.js'
import {LATEST, parseModelRef} from '../../store/names.js'
import {formatBytes} from '../../util/text.js'

export default class ModelPull extends BaseCommand<typeof ModelPull> {
  static summary = 'Download a model version, verified, to a local path.'

  static description = `Resolves REF (version, alias or latest), downloads into a temporary file beside the destination with parallel ranged reads, verifies size and sha256 (and the store's crc32c), then renames it into place: the destination is never partial or corrupt. When it already holds the same sha256, nothing is downloaded ("up to date"). Transient failures and stalls are retried for store.timeout seconds, then exit code 7.`

  static examples = [
    '<%= config.bin %> <%= command.id %> iris@3 --to /workdir/model.onnx',
    '<%= config.bin %> <%= command.id %> iris@prod --to models/ --labels-to models/labels.json --json',
  ]

  static args = {
    ref: Args.string({description: 'NAME@REF (REF: version, alias or latest).', required: true}),
  }

  static flags = {
    to: Flags.string({summary: 'Destination file, or an existing folder.', required: true}),
    'labels-to': Flags.string({summary: 'Also download the labels to this file or folder.'}),
    ...storeFlags,
  }

  async run(): Promise<PullResult> {
    const ref = parseModelRef(this.args.ref, {defaultRef: LATEST})
    const store = await storeFor(this.project, this.flags)
    const progress = await this.progress()
    progress.start(`Resolving ${this.args.ref} in ${store.uri}`)
    try {
      const result = await store.pull({
        ref, destination: this.flags.to, labelsDestination: this.flags['labels-to'],
        onResolved: manifest => progress.text(`Downloading ${manifest.name}@${manifest.version}`),
        onProgress: progress.bytes('Downloading'),
      })
      progress.stop()
      const what = `${result.name}@${result.version}`
      this.log(result.skipped
        ? `${what} up to date at ${result.path} (sha256:${result.sha256.slice(0, 12)})`
        : `${what} → ${result.path}  ${formatBytes(result.bytes)} in ${result.seconds.toFixed(2)}s  sha256:${result.sha256.slice(0, 12)} verified`)
      if (result.labelsPath) this.log(`labels → ${result.labelsPath}`)
      return result
    } finally {
      progress.stop()
    }
  }
}
