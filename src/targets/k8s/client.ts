import {AppsV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi, VersionApi} from '../../vendor/kubernetes.js'

import {UsageError, errorMessage} from '../../errors.js'

export interface KubeClients {
  config: KubeConfig
  objects: KubernetesObjectApi
  apps: AppsV1Api
  core: CoreV1Api
  /** The cluster's address, for messages. */
  server: string
}

/** kubeconfig as kubectl finds it: KUBECONFIG (or ~/.kube/config, or in-cluster), then --context. */
export function kubeClients(options: {context?: string} = {}): KubeClients {
  const config = new KubeConfig()
  try {
    config.loadFromDefault()
  } catch (error) {
    throw new UsageError(`cannot load a kubeconfig: ${errorMessage(error)}`, {
      suggestion: 'set KUBECONFIG, or run gcloud container clusters get-credentials CLUSTER',
    })
  }

  if (options.context) {
    if (!config.getContexts().some(c => c.name === options.context)) {
      throw new UsageError(`kubeconfig has no context ${options.context}`, {
        suggestion: `contexts: ${
          config
            .getContexts()
            .map(c => c.name)
            .join(', ') || '(none)'
        }`,
      })
    }

    config.setCurrentContext(options.context)
  }

  const cluster = config.getCurrentCluster()
  if (!cluster) throw new UsageError('the kubeconfig has no current cluster', {suggestion: 'pass --context, or set KUBECONFIG'})
  // With no KUBECONFIG, no ~/.kube/config and no in-cluster token, client-node falls back to http://localhost:8080.
  if (
    !process.env.KUBECONFIG &&
    cluster.name === 'cluster' &&
    cluster.server === 'http://localhost:8080' &&
    config.getCurrentUser()?.name === 'user'
  ) {
    throw new UsageError('no kubeconfig found: KUBECONFIG is not set and there is no ~/.kube/config', {
      suggestion: 'set KUBECONFIG, or run gcloud container clusters get-credentials CLUSTER',
    })
  }

  return {
    config,
    server: cluster.server,
    objects: KubernetesObjectApi.makeApiClient(config),
    apps: config.makeApiClient(AppsV1Api),
    core: config.makeApiClient(CoreV1Api),
  }
}

/** The API server's version (GET /version). */
export async function serverVersion(clients: KubeClients): Promise<{major: string; minor: string; gitVersion: string}> {
  return clients.config.makeApiClient(VersionApi).getCode()
}
