import type {V1Deployment} from '../../vendor/kubernetes.js'

import {errorMessage} from '../../errors.js'
import {API_PORT_NAME, CONTAINERS} from '../../pod/contract.js'
import type {KubeClients} from './client.js'
import {apiMessage} from './errors.js'
import {currentPods} from './rollout.js'

/** What one running API container says it serves (GET /metadata through the API server's pod proxy). */
export interface ServedModel {
  pod: string
  ready: boolean
  name: string | null
  version: string | null
  sha256: string | null
  /** Why the answer could not be read or was refused as malformed. */
  error?: string
}

const SHA256 = /^[0-9a-f]{64}$/
const MAX_PODS = 16

/**
 * Asks the running pods of the current revision which model they loaded, so
 * that status reports what is served, not only what was asked for. The
 * answer comes from the network and is validated like any input: a field of
 * the wrong shape is an error for that pod, never printed as is.
 */
export async function servedModels(clients: KubeClients, deployment: V1Deployment): Promise<ServedModel[]> {
  const namespace = deployment.metadata!.namespace!
  const pods = (await currentPods(clients, deployment))
    // A pod on its way out (its preStop grace, after a scale-down or a rollback) serves nothing new: not listed.
    .filter(pod => !pod.metadata?.deletionTimestamp)
    .filter(pod => pod.status?.containerStatuses?.some(status => status.name === CONTAINERS.api && status.state?.running))
    .slice(0, MAX_PODS)
  return Promise.all(
    pods.map(async pod => {
      const name = pod.metadata!.name!
      const ready = pod.status?.conditions?.some(c => c.type === 'Ready' && c.status === 'True') ?? false
      const served: ServedModel = {pod: name, ready, name: null, version: null, sha256: null}
      // The pod proxy takes a port number: a port name gives a reset stream.
      const port = pod.spec?.containers
        .find(container => container.name === CONTAINERS.api)
        ?.ports?.find(p => p.name === API_PORT_NAME)?.containerPort
      try {
        if (!port) throw new Error('the api container has no port named http')
        const body = (await withTimeout(
          clients.core.connectGetNamespacedPodProxyWithPath({name: `${name}:${port}`, namespace, path: 'metadata'}),
          5000,
        )) as unknown
        const metadata = (typeof body === 'string' ? JSON.parse(body) : body) as Record<string, unknown>
        if (typeof metadata?.sha256 !== 'string' || !SHA256.test(metadata.sha256)) throw new Error('its /metadata has no valid sha256')
        served.sha256 = metadata.sha256
        served.name = shortText(metadata.name)
        served.version = shortText(metadata.version)
      } catch (error) {
        const status = (error as {code?: number}).code
        served.error =
          status === 403 ? 'no right to get pods/proxy' : (status ? apiMessage(error) : errorMessage(error)).split('\n')[0].slice(0, 200)
      }

      return served
    }),
  )
}

function shortText(value: unknown): string | null {
  return typeof value === 'string' && value.length <= 128 && /^[\w.@:+-]*$/.test(value) ? value : null
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${ms / 1000}s`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}
