import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {clusterFlags} from '../../cli/flags.js'
import {imageNameFlags, registryUserFlag} from '../../cli/image-flags.js'
import {type PullSecretResult, createPullSecret} from '../../targets/k8s/pull-secret.js'

export type {PullSecretResult} from '../../targets/k8s/pull-secret.js'

export default class ImageSecret extends BaseCommand<typeof ImageSecret> {
  static summary = 'Create or update the Secret the cluster pulls the images with, from the credentials image push uses.'

  static description = [
    `Reads the registry credentials the way mlops image push does (MLOPS_REGISTRY_USERNAME and MLOPS_REGISTRY_PASSWORD, else`,
    `$DOCKER_CONFIG/config.json) for the registry in the images' names, and applies a kubernetes.io/dockerconfigjson Secret`,
    `with them (server-side apply, with its namespace; safe to repeat).`,
    `Name it in deploy.imagePullSecrets in mlops.yaml so the pods use it. The Secret's content is never printed.`,
    `No credentials for the registry exits 6.`,
  ].join(' ')

  static examples = [
    'MLOPS_REGISTRY_USERNAME=ci MLOPS_REGISTRY_PASSWORD=$TOKEN <%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --name registry-pull --namespace staging --context gke_prod',
  ]

  static flags = {
    ...clusterFlags,
    ...imageNameFlags,
    name: Flags.string({summary: 'Secret name (default: the first of deploy.imagePullSecrets, else <deployment>-registry).'}),
    username: registryUserFlag,
  }

  async run(): Promise<PullSecretResult> {
    const result = await createPullSecret(this.project, {
      name: this.flags.name,
      namespace: this.flags.namespace,
      context: this.flags.context,
      image: {repository: this.flags.repository, tag: this.flags.tag},
      username: this.flags.username,
    })
    this.log(
      `secret ${result.namespace}/${result.secret} ${result.result}: pull credentials for ${result.registry} (user ${result.username})`,
    )
    if (!result.referenced) this.log(`add it to mlops.yaml so the pods use it:\n  deploy:\n    imagePullSecrets: [${result.secret}]`)
    return result
  }
}
