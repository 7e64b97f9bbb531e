import type {CoreV1Api, V1Node, V1NodeSystemInfo} from '@kubernetes/client-node'

import {type KubeClients, kubeClients} from '../../src/targets/k8s/client.js'
import {restoreEnv} from './env.js'
/**
 * Whether the API server has an object: 200 when `read` gets it, 404 when the
 * server says it does not exist. Any other answer (403, a refused connection)
 * fails the test: it says nothing about the object.
 */
export async function apiStatus(read: () => Promise<unknown>): Promise<200 | 404> {
  try {
    await read()
    return 200
  } catch (error) {
    if ((error as {code?: number}).code === 404) return 404
    throw error
  }
}

/**
 * A Node object with the nodeInfo the test chooses, on a real API server: unschedulable and
 * tainted (key `label`), so no other test's pod lands on it, and without a kwok annotation, so
 * kwok leaves it alone. Labelled `label: value` for the test to select it.
 */
export async function createTestNode(
  core: CoreV1Api,
  node: {name: string; label: string; value: string; nodeInfo: Partial<V1NodeSystemInfo>},
): Promise<void> {
  await core.deleteNode({name: node.name}).catch(() => {})
  await core.createNode({
    body: {
      metadata: {name: node.name, labels: {[node.label]: node.value}},
      spec: {unschedulable: true, taints: [{key: node.label, value: node.value, effect: 'NoSchedule'}]},
    },
  })
  const nodeInfo: V1NodeSystemInfo = {
    architecture: 'amd64',
    bootID: '',
    containerRuntimeVersion: 'containerd://2.1.4',
    kernelVersion: '6.1.0',
    kubeProxyVersion: '',
    kubeletVersion: 'v1.36.3',
    machineID: '',
    operatingSystem: 'linux',
    osImage: 'Debian GNU/Linux 12',
    systemUUID: '',
    ...node.nodeInfo,
  }
  // The node controller updates a new Node too: write the status over the latest copy (409: read again).
  for (let attempt = 1; ; attempt++) {
    const latest: V1Node = await core.readNode({name: node.name})
    try {
      await core.replaceNodeStatus({name: node.name, body: {...latest, status: {...latest.status, nodeInfo}}})
      return
    } catch (error) {
      if ((error as {code?: number}).code !== 409 || attempt === 10) throw error
    }
  }
}

/** mlops' own Kubernetes clients for a kubeconfig file (as KUBECONFIG names it for the CLI). */
export function kubeClientsFor(kubeconfig: string): KubeClients {
  const saved = process.env.KUBECONFIG
  process.env.KUBECONFIG = kubeconfig
  try {
    return kubeClients()
  } finally {
    restoreEnv('KUBECONFIG', saved)
  }
}
