import type {ProjectConfig} from '../../config/load.js'
import {PermissionError, UsageError} from '../../errors.js'
import {type RegistryAuth, SET_REGISTRY_ENV, givenCredentials, registryCredentials} from '../../images/credentials.js'
import {imageNames, registryOf} from '../../images/names.js'
import {type AppliedObject, applyObjects} from './apply.js'
import {type KubeClients, kubeClients} from './client.js'
import {deploymentOf} from './release.js'

export interface PullSecretResult {
  secret: string
  namespace: string
  registry: string
  username: string
  result: 'configured' | 'created' | 'unchanged'
  /** Whether deploy.imagePullSecrets in mlops.yaml already names it. */
  referenced: boolean
}

/**
 * mlops image secret: the registry credentials image push would use, for the registry in the
 * images' names, applied as the pull Secret of the project's Deployment (its name: the flag, else
 * the first of deploy.imagePullSecrets, else <deployment>-registry).
 */
export async function createPullSecret(
  project: ProjectConfig,
  request: {name?: string; namespace?: string; context?: string; image: {repository?: string; tag?: string}; username?: string},
): Promise<PullSecretResult> {
  const target = deploymentOf(project, request)
  const listed = project.values.deploy?.imagePullSecrets ?? []
  const name = request.name ?? listed[0] ?? `${target.name}-registry`
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) {
    throw new UsageError(`invalid secret name "${name}": lower-case letters, digits, '-' and '.'`)
  }

  const names = await imageNames(project, request.image)
  const registry = registryOf(names.ref('api'))
  const auth = await registryCredentials(registry, givenCredentials(request.username))
  if (!auth) throw new PermissionError(`no credentials for ${registry}`, {suggestion: `docker login ${registry}, or ${SET_REGISTRY_ENV}`})
  const applied = await applyPullSecret(kubeClients({context: request.context}), {
    name,
    namespace: target.namespace,
    registry,
    auth,
    labels: {'app.kubernetes.io/name': target.name, 'app.kubernetes.io/managed-by': 'mlops'},
  })
  return {
    secret: name,
    namespace: target.namespace,
    registry,
    username: auth.username!,
    result: applied.result,
    referenced: listed.includes(name),
  }
}

export interface PullSecretRequest {
  name: string
  namespace: string
  registry: string
  auth: RegistryAuth
  labels: Record<string, string>
}

/**
 * A kubernetes.io/dockerconfigjson Secret holding the credentials mlops image
 * push used, so the node can pull the images deploy pins (deploy.imagePullSecrets).
 * Applied server-side with the namespace it lives in; safe to repeat. Its
 * content never leaves this function: callers report names only.
 */
export async function applyPullSecret(clients: KubeClients, request: PullSecretRequest): Promise<AppliedObject> {
  const {auth} = request
  if (!auth.username || !auth.password) {
    throw new UsageError(`the credentials for ${request.registry} are an identity token, which a node cannot pull with`, {
      suggestion: `${SET_REGISTRY_ENV} (a token of the registry as the password), or let the nodes pull with their own identity`,
    })
  }

  const entry = {
    username: auth.username,
    password: auth.password,
    auth: Buffer.from(`${auth.username}:${auth.password}`).toString('base64'),
  }
  const config = {auths: {[request.registry]: entry}}
  const applied = await applyObjects(clients, [
    {apiVersion: 'v1', kind: 'Namespace', metadata: {name: request.namespace, labels: {'app.kubernetes.io/managed-by': 'mlops'}}},
    {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/dockerconfigjson',
      metadata: {name: request.name, namespace: request.namespace, labels: request.labels},
      data: {'.dockerconfigjson': Buffer.from(JSON.stringify(config)).toString('base64')},
    },
  ])
  return applied[1]
}
