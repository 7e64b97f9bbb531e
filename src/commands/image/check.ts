import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {storeFlags, storeFor} from '../../cli/store-flags.js'
import {IncompatibleError} from '../../errors.js'
import {requireCompatible, supportFromLabels} from '../../images/compat.js'
import {connectDocker, imageLabels} from '../../images/docker.js'
import {type RuntimeSupport, installedRuntimeSupport} from '../../onnx/runtime-support.js'
import {LATEST, parseModelRef} from '../../store/names.js'

export interface CheckResult {
  model: string
  sha256: string
  image: string | null
  runtime: RuntimeSupport
  compatible: boolean
  reasons: string[]
}

export default class ImageCheck extends BaseCommand<typeof ImageCheck> {
  static summary = 'Check that a model version can run on an API image (the compatibility guard).'

  static description = [
    `Compares the model's manifest (ONNX IR version, opset per domain) with what the API image's ONNX Runtime supports, read`,
    `from its io.mlops.* labels (--image) or probed from the ONNX Runtime this CLI packs into the API image it builds`,
    `(without --image).`,
    `Exit code 8 when they do not match, with each reason naming both versions. deploy runs the same check before any rollout.`,
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %> --model iris@prod',
    '<%= config.bin %> <%= command.id %> --model iris@3 --image registry.example.com/iris-api:1.4.0 --json',
  ]

  static flags = {
    model: Flags.string({summary: 'NAME@REF of the model version.', required: true}),
    image: Flags.string({summary: "API image to check against (read from the Docker engine); default: this CLI's ONNX Runtime."}),
    ...storeFlags,
  }

  async run(): Promise<CheckResult> {
    const store = await storeFor(this.project, this.flags)
    const manifest = await store.resolve(parseModelRef(this.flags.model, {defaultRef: LATEST}))
    let support: RuntimeSupport
    let runtimeName: string
    if (this.flags.image) {
      const labels = await imageLabels(await connectDocker(), this.flags.image)
      const fromLabels = supportFromLabels(labels)
      if (!fromLabels) {
        throw new IncompatibleError(`image ${this.flags.image} does not say which ONNX Runtime it carries (no io.mlops.* labels)`, {
          suggestion: 'build the API image with mlops image build api',
        })
      }

      support = fromLabels
      runtimeName = `${this.flags.image} (onnxruntime ${support.runtime})`
    } else {
      support = await installedRuntimeSupport()
      runtimeName = `onnxruntime ${support.runtime}`
    }

    requireCompatible(manifest, support, runtimeName)
    const model = `${manifest.name}@${manifest.version}`
    const opsets = manifest.onnx!.opsetImports.map(o => `${o.domain} ${o.version}`).join(', ')
    this.log(
      `${model} (IR ${manifest.onnx!.irVersion}, ${opsets}) runs on ${runtimeName} (IR ≤ ${support.irVersion}, ${Object.entries(
        support.opsets,
      )
        .map(([d, v]) => `${d} ≤ ${v}`)
        .join(', ')})`,
    )
    return {model, sha256: manifest.sha256, image: this.flags.image ?? null, runtime: support, compatible: true, reasons: []}
  }
}
