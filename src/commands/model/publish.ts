import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {registryUserFlag} from '../../cli/image-flags.js'
import {storeFlags, storeFor} from '../../cli/store-flags.js'
import {UsageError} from '../../errors.js'
import {SET_REGISTRY_ENV, givenCredentials, registryCredentials} from '../../images/credentials.js'
import {imageNames} from '../../images/names.js'
import {type PublishResult, publishModel} from '../../images/publish.js'
import {parseRepository} from '../../images/registry.js'
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
    const to = this.flags.to ?? `${(await imageNames(this.project, {})).repository}/models/${ref.name}`.toLowerCase()
    const target = this.parseTarget(to)
    const auth = await registryCredentials(target.registry, givenCredentials(this.flags.username))
    if (auth?.identitytoken && !auth.password)
      throw new UsageError(`the credentials for ${target.registry} are an identity token, which model publish cannot use`, {
        suggestion: SET_REGISTRY_ENV,
      })
    const store = await storeFor(this.project, this.flags)
    const progress = await this.progress()
    progress.start(`Publishing ${this.args.ref}`)
    try {
      const result = await publishModel(store, ref, target, auth, {tag: this.flags.tag, onProgress: text => progress.text(text)})
      progress.stop()
      this.log(
        `${result.model} → ${result.repository}:${result.tag}  ${formatBytes(result.layer.size)} layer ${result.layer.uploaded ? 'pushed' : 'already there'}\n  ${result.reference}`,
      )
      return result
    } finally {
      progress.stop()
    }
  }

  private parseTarget(to: string): ReturnType<typeof parseRepository> {
    try {
      return parseRepository(to)
    } catch (error) {
      if (this.flags.to === undefined && error instanceof UsageError)
        throw new UsageError(`no registry to publish to: ${error.message}`, {
          suggestion: 'pass --to REGISTRY/REPOSITORY, or set image.repository in mlops.yaml to a registry path',
        })
      throw error
    }
  }
}
