import {Flags} from '@oclif/core'
import type Docker from 'dockerode'

import {BaseCommand} from '../../cli/base-command.js'
import {durationFlag} from '../../cli/flags.js'
import {storeFlags, storeFor} from '../../cli/store-flags.js'
import {IncompatibleError, UsageError} from '../../errors.js'
import {supportFromLabels} from '../../images/compat.js'
import {type ImageCheckResult, checkImage} from '../../images/image-check.js'
import {type CheckMatrix, buildMatrix, formatMatrix} from '../../images/matrix.js'
import {installedRuntimeSupport} from '../../onnx/runtime-support.js'
import {DEFAULT_TOLERANCE, parseTolerance} from '../../serve/parity.js'
import {LATEST, parseModelRef, validateName} from '../../store/names.js'
import {whileDeploying} from '../../targets/deploy-guard.js'
import {formatDelta} from '../../predict/compare-rules.js'
import type {ModelManifest} from '../../store/manifest.js'

export type CheckResult = ImageCheckResult | ({matrix: true} & CheckMatrix)

export default class ImageCheck extends BaseCommand<typeof ImageCheck> {
  static summary = 'Check that a model version runs, and answers as recorded, on an API image; or print what was checked.'

  static description = [
    `First the labels: the model's ONNX IR version and opsets against what the API image's ONNX Runtime supports (its`,
    `io.mlops.* labels). Then, with --image, the image itself on the Docker engine: its mlops serve --check in a container`,
    `with no network, given the verified model, labels and reference set where the loader puts them, loads the model, warms`,
    `up and answers the version's reference set within --reference-tolerance. Without --image, the same runs in this`,
    `process on the ONNX Runtime this CLI packs into the API image it builds.`,
    `Exit code 8 when the image cannot serve the version or answers otherwise, naming both runtimes.`,
    `An image's result, ok or why not, is recorded for the version in the store (verified.json): --matrix prints them all,`,
    `versions × images, and mlops model show lists them for a version.`,
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %> --model iris@prod',
    '<%= config.bin %> <%= command.id %> --model iris@3 --image registry.example.com/iris-api:1.4.0 --json',
    '<%= config.bin %> <%= command.id %> --matrix',
    '<%= config.bin %> <%= command.id %> --matrix --model iris',
  ]

  static flags = {
    model: Flags.string({summary: 'NAME@REF of the model version (with --matrix: a model NAME, to list only its versions).'}),
    image: Flags.string({summary: "API image to check on (in the Docker engine); default: this CLI's ONNX Runtime, in this process."}),
    matrix: Flags.boolean({summary: 'Print the recorded results: model versions × API images.'}),
    'reference-tolerance': Flags.string({
      summary: 'Largest difference of any number in an answer that still counts as the recorded one.',
      env: 'MLOPS_REFERENCE_TOLERANCE',
      default: String(DEFAULT_TOLERANCE),
    }),
    timeout: durationFlag({summary: 'How long the check in the image may take (e.g. 90s, 5m).', default: 300_000}),
    ...storeFlags,
  }

  async run(): Promise<CheckResult> {
    const {flags} = this
    if (flags.matrix) return this.matrix()
    if (!flags.model)
      throw new UsageError('image check needs --model NAME@REF, or --matrix', {
        suggestion: 'mlops image check --model iris@prod --image IMAGE',
      })
    const tolerance = parseTolerance(flags['reference-tolerance'])
    const store = await storeFor(this.project, flags)
    const manifest = await store.resolve(parseModelRef(flags.model, {defaultRef: LATEST}))
    let image: {ref: string; docker: Docker} | undefined
    let runtime: {support: Awaited<ReturnType<typeof installedRuntimeSupport>>; name: string}
    if (flags.image) {
      const {connectDocker, imageLabels} = await import('../../images/docker.js')
      const docker = await connectDocker()
      const support = supportFromLabels(await imageLabels(docker, flags.image))
      if (!support) {
        throw new IncompatibleError(`image ${flags.image} does not say which ONNX Runtime it carries (no io.mlops.* labels)`, {
          suggestion: 'build the API image with mlops image build api',
        })
      }

      image = {ref: flags.image, docker}
      runtime = {support, name: `${flags.image} (onnxruntime ${support.runtime})`}
    } else {
      const support = await installedRuntimeSupport()
      runtime = {support, name: `onnxruntime ${support.runtime}`}
    }

    const progress = await this.progress()
    const started: Array<() => Promise<void>> = []
    const model = `${manifest.name}@${manifest.version}`
    progress.start(`Checking ${model} on ${image?.ref ?? "this CLI's ONNX Runtime"}`)
    try {
      const result = await whileDeploying(
        async () => {
          for (const cleanup of started.reverse()) await cleanup()
          return 'its container and files were removed; nothing was recorded'
        },
        async () =>
          checkImage(
            {
              store,
              manifest,
              image,
              tolerance,
              timeoutMs: flags.timeout,
              onProgress: text => progress.text(text),
              track: cleanup => started.push(cleanup),
            },
            runtime,
          ),
        {json: this.jsonEnabled(), command: 'mlops image check'},
      )
      progress.stop()
      this.log(describe(result, manifest, runtime.name))
      return result
    } finally {
      progress.stop()
    }
  }

  private async matrix(): Promise<CheckResult> {
    const {flags} = this
    if (flags.image) throw new UsageError('--matrix prints what was recorded; it checks no image', {suggestion: 'drop --image'})
    if (flags.model?.includes('@'))
      throw new UsageError(`--matrix takes a model name, not "${flags.model.slice(0, 80)}"`, {
        suggestion: `--model ${flags.model.split('@')[0]}`,
      })
    const name = flags.model === undefined ? undefined : validateName('model name', flags.model)
    const store = await storeFor(this.project, flags)
    const matrix = buildMatrix(store.uri, await store.allVerifications(name))
    this.log(formatMatrix(matrix))
    return {matrix: true, ...matrix}
  }
}

function describe(result: ImageCheckResult, manifest: ModelManifest, runtimeName: string): string {
  const {runtime, parity} = result
  const opsets = manifest.onnx!.opsetImports.map(o => `${o.domain} ${o.version}`).join(', ')
  const limits = `IR ≤ ${runtime.irVersion}, ${Object.entries(runtime.opsets)
    .map(([d, v]) => `${d} ≤ ${v}`)
    .join(', ')}`
  return [
    `${result.model} (IR ${manifest.onnx!.irVersion}, ${opsets}) runs on ${runtimeName} (${limits})`,
    parity
      ? `${result.servedBy} answers its reference set as ${parity.recordedBy} recorded it: ${parity.rows} rows, max |Δ| ${formatDelta(parity.maxDelta)} ≤ ${parity.tolerance}`
      : `${result.servedBy} loads it and warms up (${result.model} has no reference set to answer)`,
    ...(result.recorded ? [`recorded in the store: ${result.model} verified on ${result.image} (${result.imageId!.slice(7, 19)})`] : []),
  ].join('\n')
}
