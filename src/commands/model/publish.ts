import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {registryUserFlag} from '../../cli/image-flags.js'
import {storeFlags, storeFor} from '../../cli/store-flags.js'
import {type PublishResult, publishProjectModel} from '../../images/publish.js'
import {LATEST, parseModelRef} from '../../store/names.js'
import {formatBytes} from '../../util/text.js'

export default class ModelPublish extends BaseCommand<typeof ModelPublish> {
  static summary = 'Publish a model version as an OCI image, for Kubernetes image volumes (deploy.delivery image-volume).'

  static description = [
    `Packs the stored, verified version (model.onnx, labels.json when there is one, and the store's manifest.json) into one`,
    `reproducible layer of an OCI image that containerd mounts as a read-only volume, and pushes it to`,
    `REGISTRY/REPOSITORY:VERSION without a Docker engine.`,
    `The same version always gives the same digest; blobs the registry has are not sent again.`,
    `The digest is recorded in the store beside the version (mlops model show lists it), so deploy can pin it.`,
    `Credentials as for mlops image push. A refused push exits 6, an unreachable registry 7.`,
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %> iris@3 --to registry.example.com/team/iris-model',
    'MLOPS_REGISTRY_USERNAME=ci MLOPS_REGISTRY_PASSWORD=$TOKEN <%= config.bin %> <%= command.id %> iris@prod --json',
  ]

  static args = {
    ref: Args.string({description: 'NAME@REF (REF: version, alias or latest).', required: true}),
  }

  static flags = {
    to: Flags.string({
      summary: 'REGISTRY/REPOSITORY to push to (default: <image.repository>/models/<name>).',
      env: 'MLOPS_MODEL_IMAGE_REPOSITORY',
    }),
    tag: Flags.string({summary: 'Image tag (default: the version).'}),
    username: registryUserFlag,
    ...storeFlags,
  }

  async run(): Promise<PublishResult> {
    const ref = parseModelRef(this.args.ref, {defaultRef: LATEST})
    const progress = await this.progress()
    progress.start(`Publishing ${this.args.ref}`)
    try {
      const result = await publishProjectModel(this.project, async () => storeFor(this.project, this.flags), ref, {
        to: this.flags.to,
        tag: this.flags.tag,
        username: this.flags.username,
        onProgress: text => progress.text(text),
      })
      progress.stop()
      this.log(
        `${result.model} → ${result.repository}:${result.tag}  ${formatBytes(result.layer.size)} layer ${result.layer.uploaded ? 'pushed' : 'already there'}\n  ${result.reference}`,
      )
      return result
    } finally {
      progress.stop()
    }
  }
}
