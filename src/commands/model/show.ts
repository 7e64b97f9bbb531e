import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {IntegrityError} from '../../errors.js'
import {storeFlags, storeFor} from '../../cli/store-flags.js'
import type {ModelManifest} from '../../store/manifest.js'
import type {Publication, ReferenceSummary, Verification} from '../../store/model-store.js'
import {LATEST, parseModelRef} from '../../store/names.js'
import {summarizeReference} from '../../store/references.js'
import {formatBytes} from '../../util/text.js'

/**
 * The manifest, with the images the version was published as (and why they could not be read, when so)
 * and its reference set, when it has one.
 */
export type ModelDetails = ModelManifest & {
  images: Publication[]
  imagesProblem?: string
  reference?: ReferenceSummary
  /** The API images mlops image check ran it on, and what it found on each. */
  verified: Verification[]
  verifiedProblem?: string
}

export default class ModelShow extends BaseCommand<typeof ModelShow> {
  static summary = 'Show the manifest of a model version.'

  static description = [
    'REF is a version, an alias or "latest" (the default). --json prints the manifest itself: name, version, file, size,',
    'sha256, crc32c, createdAt, source, metadata, labels and the ONNX signature, and images: where mlops model publish pushed',
    'it (repository, tag, digest), reference: its reference set (rows, the runtime that computed the outputs, sha256), and',
    'verified: the API images mlops image check ran it on (image, ID, runtime, ok or why not).',
    'A reference set that does not match its sha256 fails with exit code 5.',
  ].join(' ')

  static examples = ['<%= config.bin %> <%= command.id %> iris@3', '<%= config.bin %> <%= command.id %> iris@prod --json']

  static args = {
    ref: Args.string({description: 'NAME@REF (REF: version, alias or latest).', required: true}),
  }

  static flags = {...storeFlags}

  async run(): Promise<ModelDetails> {
    const store = await storeFor(this.project, this.flags)
    const manifest = await store.resolve(parseModelRef(this.args.ref, {defaultRef: LATEST}))
    // A corrupt publications or verifications record is reported, not fatal: the manifest is still worth showing.
    const problems: {images?: string; verified?: string} = {}
    const readOrReport = async <T>(field: keyof typeof problems, read: Promise<T[]>): Promise<T[]> =>
      read.catch((error: unknown) => {
        if (!(error instanceof IntegrityError)) throw error
        problems[field] = error.message
        return []
      })
    const [images, verified] = await Promise.all([
      readOrReport('images', store.publications(manifest.name, manifest.version)),
      readOrReport('verified', store.verifications(manifest.name, manifest.version)),
    ])
    const imagesProblem = problems.images
    const record = await store.reference(manifest)
    const reference = record && summarizeReference(record)
    const lines = [
      `${manifest.name}@${manifest.version}`,
      `  file       ${manifest.file} (${formatBytes(manifest.size)}, ${manifest.size} bytes)`,
      `  sha256     ${manifest.sha256}`,
      `  crc32c     ${manifest.crc32c}`,
      `  created    ${manifest.createdAt} by ${manifest.createdBy}`,
      `  source     ${manifest.source.file}${manifest.source.gitCommit ? ` @ ${manifest.source.gitCommit.slice(0, 12)}${manifest.source.gitDirty ? ' (dirty)' : ''}` : ''}`,
    ]
    for (const [key, value] of Object.entries(manifest.metadata ?? {})) lines.push(`  meta       ${key}=${value}`)
    if (manifest.labels) lines.push(`  labels     ${Object.values(manifest.labels.values).join(', ')}`)
    const {onnx} = manifest
    if (onnx) {
      lines.push(
        `  onnx       IR ${onnx.irVersion}, opsets ${onnx.opsetImports.map(o => `${o.domain} ${o.version}`).join(', ')}, producer ${onnx.producerName} ${onnx.producerVersion}`.trimEnd(),
        ...onnx.inputs.map(i => `  input      ${i.name}: ${i.type}`),
        ...onnx.outputs.map(o => `  output     ${o.name}: ${o.type}`),
      )
    }

    if (reference) lines.push(`  reference  ${reference.rows} rows by ${reference.runtime}, sha256 ${reference.sha256}`)
    if (imagesProblem) lines.push(`  image      ${imagesProblem}`)
    for (const image of images) lines.push(`  image      ${image.repository}:${image.tag}@${image.digest} (published ${image.publishedAt})`)
    if (problems.verified) lines.push(`  verified   ${problems.verified}`)
    for (const entry of verified) lines.push(`  verified   ${describeVerification(entry)}`)
    this.log(lines.join('\n'))
    return {
      ...manifest,
      images,
      ...(imagesProblem ? {imagesProblem} : {}),
      ...(reference ? {reference} : {}),
      verified,
      ...(problems.verified ? {verifiedProblem: problems.verified} : {}),
    }
  }
}

function describeVerification(entry: Verification): string {
  const on = `${entry.image} (${entry.imageId.slice(7, 19)}, ${entry.runtime})`
  const what = entry.ok
    ? `✔ ${entry.parity ? `answers its reference set (${entry.parity.rows} rows)` : 'loads'}`
    : `✘ ${entry.reason ?? 'refused'}`
  return `${on} ${what}, checked ${entry.checkedAt}`
}
