import type {RegistryAuth} from '../../images/credentials.js'
import {UsageError} from '../../errors.js'
import {type AppliedObject, applyObjects} from './apply.js'
import type {KubeClients} from './client.js'

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
      suggestion:
        'set MLOPS_REGISTRY_USERNAME and MLOPS_REGISTRY_PASSWORD (a token of the registry as the password), or let the nodes pull with their own identity',
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
