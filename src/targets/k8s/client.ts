import {AppsV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi} from '../../vendor/kubernetes.js'

import {ConflictError, type MlopsError, NotFoundError, PermissionError, UnavailableError, UsageError, errorMessage} from '../../errors.js'

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

/** The API server's own message for a failed call. */
export function apiMessage(error: unknown): string {
  const {body} = error as {body?: unknown}
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as {message?: string}
      if (parsed.message) return parsed.message
    } catch {
      return body.split('\n')[0]
    }
  }

  return errorMessage(error).split('\n')[0]
}

export function apiStatus(error: unknown): number | undefined {
  const {code} = error as {code?: unknown}
  return typeof code === 'number' ? code : undefined
}

/** Maps an API server error to the documented exit codes, keeping the server's message. */
export function kubeError(error: unknown, server: string, what: string): MlopsError | unknown {
  const status = apiStatus(error)
  const message = apiMessage(error)
  if (status === 403 || status === 401)
    return new PermissionError(`${what}: ${message}`, {
      suggestion: 'ask for RBAC rights to this verb and resource, or use another --context',
    })
  if (status === 409) {
    return new ConflictError(`${what}: ${message}`, {
      suggestion: 'another field manager owns these fields; pass --force-conflicts to take them over',
    })
  }

  if (status === 404) return new NotFoundError(`${what}: ${message}`)
  if (status === undefined && /HTTP protocol is not allowed/.test(message)) {
    return new UsageError(`${what}: the kubeconfig's server ${server} is plain http`, {
      suggestion: 'use its https:// address, or set insecure-skip-tls-verify: true for that cluster',
    })
  }

  if (status === 400 || status === 422) return new UsageError(`${what}: ${message}`)
  // Server-side apply reports a value it cannot decode (cpu: abc) as a 500 "failed to convert": the input is at fault.
  if (status === 500 && /failed to convert|unable to convert|must match the regular expression/.test(message))
    return new UsageError(`${what}: ${message}`)
  if (status !== undefined && status >= 500) return new UnavailableError(`${what}: the API server failed: ${message}`)
  if (
    status === undefined &&
    /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|socket hang up|fetch failed/i.test(
      `${errorMessage(error)} ${errorMessage((error as {cause?: unknown}).cause)}`,
    )
  ) {
    return new UnavailableError(`cannot reach the Kubernetes API server at ${server}: ${errorMessage(error).split('\n')[0]}`, {
      suggestion: 'check KUBECONFIG / --context and that the cluster is up',
    })
  }

  return error
}
