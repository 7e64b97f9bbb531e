import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {clusterFlags} from '../../cli/flags.js'
import {imageNameFlags, registryUserFlag} from '../../cli/image-flags.js'
import {PermissionError, UsageError} from '../../errors.js'
import {SET_REGISTRY_ENV, givenCredentials, registryCredentials} from '../../images/credentials.js'
import {imageNames, registryOf} from '../../images/names.js'
import {kubeClients} from '../../targets/k8s/client.js'
import {applyPullSecret} from '../../targets/k8s/pull-secret.js'
import {deploymentOf} from '../../targets/k8s/release.js'

export interface PullSecretResult {
  secret: string
  namespace: string
  registry: string
  username: string
  result: 'configured' | 'created' | 'unchanged'
  /** Whether deploy.imagePullSecrets in mlops.yaml already names it. */
  referenced: boolean
}

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
    const target = deploymentOf(this.project, this.flags)
    const listed = this.project.values.deploy?.imagePullSecrets ?? []
    const name = this.flags.name ?? listed[0] ?? `${target.name}-registry`
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) {
      throw new UsageError(`invalid secret name "${name}": lower-case letters, digits, '-' and '.'`)
    }

    const names = await imageNames(this.project, {repository: this.flags.repository, tag: this.flags.tag})
    const registry = registryOf(names.ref('api'))
    const auth = await registryCredentials(registry, givenCredentials(this.flags.username))
    if (!auth) {
      throw new PermissionError(`no credentials for ${registry}`, {
        suggestion: `docker login ${registry}, or ${SET_REGISTRY_ENV}`,
      })
    }

    const applied = await applyPullSecret(kubeClients({context: this.flags.context}), {
      name,
      namespace: target.namespace,
      registry,
      auth,
      labels: {'app.kubernetes.io/name': target.name, 'app.kubernetes.io/managed-by': 'mlops'},
    })
    const result: PullSecretResult = {
      secret: name,
      namespace: target.namespace,
      registry,
      username: auth.username!,
      result: applied.result,
      referenced: listed.includes(name),
    }
    this.log(`secret ${target.namespace}/${name} ${applied.result}: pull credentials for ${registry} (user ${result.username})`)
    if (!result.referenced) this.log(`add it to mlops.yaml so the pods use it:\n  deploy:\n    imagePullSecrets: [${name}]`)
    return result
  }
}
