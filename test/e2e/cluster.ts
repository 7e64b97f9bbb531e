import {AppsV1Api, CoreV1Api, KubeConfig, type V1Pod} from '@kubernetes/client-node'
import {type ChildProcess, execFileSync, spawn} from 'node:child_process'
import {join} from 'node:path'

import {TEST_CACHE} from '../env/cache.js'
import {waitFor} from '../env/ports.js'

/** kubectl from the test cache (built with the control plane), as a user would run it. */
export const KUBECTL = join(TEST_CACHE, 'k8s-v1.36.3', 'bin', 'kubectl')

export function kubectl(kubeconfig: string, args: string[]): string {
  return execFileSync(KUBECTL, ['--kubeconfig', kubeconfig, ...args], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})
}

export function clientsFor(kubeconfig: string): {core: CoreV1Api; apps: AppsV1Api} {
  const config = new KubeConfig()
  config.loadFromFile(kubeconfig)
  return {core: config.makeApiClient(CoreV1Api), apps: config.makeApiClient(AppsV1Api)}
}

export async function podsOf(core: CoreV1Api, namespace: string, app: string): Promise<V1Pod[]> {
  return (await core.listNamespacedPod({namespace, labelSelector: `app.kubernetes.io/name=${app}`})).items
}

/** Pods of the Deployment's current revision (its newest ReplicaSet), not being deleted. */
export async function currentPods(clients: {core: CoreV1Api; apps: AppsV1Api}, namespace: string, name = 'iris'): Promise<V1Pod[]> {
  const live = await clients.apps.readNamespacedDeployment({name, namespace})
  const sets = (await clients.apps.listNamespacedReplicaSet({namespace, labelSelector: `app.kubernetes.io/name=${name}`})).items
  const revision = live.metadata?.annotations?.['deployment.kubernetes.io/revision']
  const newest = sets.find(rs => rs.metadata?.annotations?.['deployment.kubernetes.io/revision'] === revision)
  return (await podsOf(clients.core, namespace, name)).filter(
    pod =>
      pod.metadata?.labels?.['pod-template-hash'] === newest?.metadata?.labels?.['pod-template-hash'] && !pod.metadata?.deletionTimestamp,
  )
}

export const isReady = (pod: V1Pod) => pod.status?.conditions?.some(c => c.type === 'Ready' && c.status === 'True') ?? false

/** The loader's termination message: what Kubernetes read from /dev/termination-log. */
export function loaderSummary(pod: V1Pod): Record<string, unknown> | undefined {
  const status = pod.status?.initContainerStatuses?.find(s => s.name === 'model-loader')
  const terminated = status?.state?.terminated ?? status?.lastState?.terminated
  return terminated?.message ? (JSON.parse(terminated.message) as Record<string, unknown>) : undefined
}

/**
 * A kubectl port-forward to one pod (not the Deployment: kubectl would pick
 * any pod, the failing new one too), and a request loop through it that
 * counts every failure until stopped.
 */
export class PredictLoop {
  private stopped = false
  private loop?: Promise<void>
  readonly answers: string[] = []
  readonly errors: string[] = []

  private constructor(
    private readonly forward: ChildProcess,
    readonly url: string,
  ) {}

  static async start(kubeconfig: string, namespace: string, pod: string, body: unknown): Promise<PredictLoop> {
    const forward = spawn(KUBECTL, ['--kubeconfig', kubeconfig, '-n', namespace, 'port-forward', `pod/${pod}`, ':http'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    forward.stdout.on('data', chunk => {
      output += chunk
    })
    forward.stderr.on('data', chunk => {
      output += chunk
    })
    await waitFor(async () => /Forwarding from 127\.0\.0\.1:\d+/.test(output), `kubectl port-forward to ${pod}`, 15_000)
    const loop = new PredictLoop(forward, `http://127.0.0.1:${/Forwarding from 127\.0\.0\.1:(\d+)/.exec(output)![1]}`)
    loop.loop = loop.run(JSON.stringify(body))
    return loop
  }

  async stop(): Promise<{answers: string[]; errors: string[]}> {
    this.stopped = true
    await this.loop
    this.forward.kill('SIGTERM')
    return {answers: this.answers, errors: this.errors}
  }

  private async run(body: string): Promise<void> {
    while (!this.stopped) {
      try {
        const response = await fetch(`${this.url}/predict/label`, {
          method: 'POST',
          headers: {'content-type': 'application/json'},
          body,
          signal: AbortSignal.timeout(5000),
        })
        const text = await response.text()
        if (response.ok) this.answers.push(text)
        else this.errors.push(`HTTP ${response.status} ${text}`)
      } catch (error) {
        this.errors.push((error as Error).message)
      }

      await new Promise(resolve => {
        setTimeout(resolve, 50)
      })
    }
  }
}
