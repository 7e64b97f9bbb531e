import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {storeFlags, storeFor} from '../../cli/store-flags.js'
import {UsageError} from '../../errors.js'
import {computeReference, readReferenceRows} from '../../predict/reference.js'
import {type InspectedModel, inspectModelFile} from '../../store/model-file.js'
import type {PushResult} from '../../store/model-store.js'
import {validateName} from '../../store/names.js'
import {type ComputedReference, REFERENCE_MAX_BYTES, REFERENCE_MAX_ROWS} from '../../store/references.js'
import {formatBytes} from '../../util/text.js'

export default class ModelPush extends BaseCommand<typeof ModelPush> {
  static summary = 'Push a model file to the store as a new, immutable version.'

  static description = [
    `Checks the file first (an ONNX file must parse; its IR version, opsets, inputs and outputs go into the manifest),`,
    `uploads it create-only while hashing it (sha256, crc32c), then writes the version's manifest.json last.`,
    `A version that exists is never changed: pushing it again fails with exit code 4. Without --version the next integer is taken.`,
    `--reference runs the model in-process with the installed onnxruntime on the file's rows before anything is sent (a row`,
    `it refuses fails with exit code 2) and records the rows and outputs beside the version (reference.json, listed by model show).`,
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %> model/model.onnx --name iris --labels model/labels.json --alias prod',
    '<%= config.bin %> <%= command.id %> model/model.onnx --name iris --labels model/labels.json --reference model/reference.csv',
    '<%= config.bin %> <%= command.id %> model.onnx --name iris --version 2024-06-01 --meta accuracy=0.97 --alias staging',
    'MLOPS_STORE=gs://my-models/prod <%= config.bin %> <%= command.id %> model.onnx --name iris --json',
  ]

  static args = {
    file: Args.string({description: 'Model file (.onnx files are validated).', required: true}),
  }

  static flags = {
    name: Flags.string({char: 'n', summary: 'Model name (default: model.name in mlops.yaml).', env: 'MLOPS_MODEL_NAME'}),
    version: Flags.string({char: 'v', summary: 'Version to create (default: the next integer).'}),
    labels: Flags.string({summary: 'Labels file: {"0": "setosa", ...} or ["setosa", ...].'}),
    meta: Flags.string({summary: 'Metadata KEY=VALUE recorded in the manifest (repeatable).', multiple: true, default: []}),
    alias: Flags.string({summary: 'Point this alias at the new version.'}),
    reference: Flags.string({
      summary: `Reference rows (JSON, JSON Lines or CSV; at most ${REFERENCE_MAX_ROWS} rows, ${formatBytes(REFERENCE_MAX_BYTES)}) to run and record with the version.`,
    }),
    ...storeFlags,
  }

  async run(): Promise<PushResult> {
    const {flags} = this
    const name = validateName('model name', flags.name ?? this.project.values.model?.name ?? missingName())
    if (flags.version !== undefined) validateName('version', flags.version)
    if (flags.alias !== undefined) validateName('alias', flags.alias)
    const metadata = parseMetadata(flags.meta)
    const model = await inspectModelFile(this.args.file, flags.labels)
    const reference = flags.reference === undefined ? undefined : await computeReferenceFor(model, flags.reference)
    const store = await storeFor(this.project, flags)

    const progress = await this.progress()
    progress.start(`Pushing ${name} to ${store.uri}`)
    try {
      const result = await store.push({
        model,
        name,
        version: flags.version,
        metadata,
        alias: flags.alias,
        reference,
        workDir: process.cwd(),
        onProgress: progress.bytes(`Uploading ${name}`),
      })
      progress.succeed(`Pushed ${result.ref}`)
      this.log(`${result.ref}  ${formatBytes(result.size)}  sha256:${result.sha256}`)
      this.log(`  ${result.uri}`)
      if (result.reference)
        this.log(`  reference ${result.reference.rows} rows, ${result.reference.runtime}, sha256:${result.reference.sha256.slice(0, 12)}`)
      if (result.alias) this.log(`  alias ${result.alias} → ${result.version}`)
      return result
    } finally {
      progress.stop()
    }
  }
}

/** Reads the rows and runs the model on them before anything is sent: a row the model refuses stores nothing. */
async function computeReferenceFor(model: InspectedModel, file: string): Promise<ComputedReference> {
  if (!model.onnx) throw new UsageError(`--reference needs an ONNX model: ${model.path} is not one`)
  const rows = await readReferenceRows(file)
  return computeReference(model.path, model.labels, rows, file)
}

function missingName(): never {
  throw new UsageError('no model name: pass --name NAME', {suggestion: 'or set model.name in mlops.yaml, or MLOPS_MODEL_NAME'})
}

function parseMetadata(pairs: string[]): Record<string, string> {
  const metadata: Record<string, string> = {}
  for (const pair of pairs) {
    const eq = pair.indexOf('=')
    const key = eq === -1 ? '' : pair.slice(0, eq)
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(key)) {
      throw new UsageError(`invalid --meta "${pair}": use KEY=VALUE with a KEY of A-Z a-z 0-9 . _ -`)
    }

    if (key in metadata) throw new UsageError(`--meta ${key} is given twice`)
    metadata[key] = pair.slice(eq + 1)
  }

  return metadata
}
