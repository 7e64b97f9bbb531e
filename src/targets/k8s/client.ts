import {AppsV1Api, CoreV1Api, KubeConfig, KubernetesObjectApi, VersionApi} from '../../vendor/kubernetes.js'

import {createHash} from 'node:crypto'
import type {Agent} from 'node:http'

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

  reuseConnections(config)
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

type CreateAgent = (cluster: unknown, options: Record<string, unknown>) => Agent

/**
 * client-node makes a new agent for every request, so every call to the API
 * server paid a new TCP connection, a TLS handshake and a TLS context with the
 * client key (a deploy makes about a dozen calls). One keep-alive agent per
 * set of TLS options serves them all, as kubectl keeps one connection; a
 * credential that changes (an exec plugin's new certificate) gets an agent of
 * its own. Idle sockets do not hold the process open.
 */
function reuseConnections(config: KubeConfig): void {
  const target = config as unknown as {createAgent: CreateAgent}
  const create = target.createAgent.bind(config)
  const agents = new Map<string, Agent>()
  target.createAgent = (cluster, options) => {
    const {server, proxyUrl} = (cluster ?? {}) as {server?: string; proxyUrl?: string}
    const tls = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'].map(name => {
      const value = options[name]
      return Buffer.isBuffer(value) ? value.toString('base64') : value
    })
    const key = createHash('sha256')
      .update(JSON.stringify([server, proxyUrl, tls]))
      .digest('hex')
    let agent = agents.get(key)
    if (!agent) {
      agent = create(cluster, {...options, keepAlive: true})
      agents.set(key, agent)
    }
    return agent
  }
}
