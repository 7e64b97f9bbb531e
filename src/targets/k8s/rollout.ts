import type {V1Deployment, V1Pod} from '../../vendor/kubernetes.js'
import {setTimeout as sleep} from 'node:timers/promises'

import {ExitCode, IncompatibleError, MlopsError, RolloutError} from '../../errors.js'
import {parseLoaderSummary, serveRefusal} from '../../pod/contract.js'
import type {KubeClients} from './client.js'
import {kubeError} from './errors.js'
import {rolloutStatus} from './rollout-rules.js'

export {RolloutError} from '../../errors.js'

export {type RolloutProgress, rolloutStatus} from './rollout-rules.js'

/**
 * Polls the Deployment (at 10, 20, 40, 80 ms, then every 100 ms) until kubectl's rules say done, the deadline passes
 * or the controller reports ProgressDeadlineExceeded; then a diagnosis from
 * the pods replaces a bare timeout. Polling (not a watch) makes a dropped
 * connection cost one poll: transient errors are retried until the deadline.
 */
export async function waitForRollout(
  clients: KubeClients,
  target: {name: string; namespace: string},
  options: {timeoutMs: number; onProgress?: (message: string) => void},
): Promise<V1Deployment> {
  const deadline = Date.now() + options.timeoutMs
  let last = 'waiting'
  let nextPodCheck = Date.now() + POD_CHECK_MS
  // Polled soon after the apply (a rollout with nothing to pull can be done in tens of ms), then every 100 ms.
  let pause = 10
  for (;;) {
    let deployment: V1Deployment | undefined
    try {
      deployment = await clients.apps.readNamespacedDeployment(target)
    } catch (error) {
      const mapped = kubeError(error, clients.server, `reading deployment ${target.namespace}/${target.name}`)
      if (!(mapped instanceof MlopsError) || mapped.code !== 'UNAVAILABLE') throw mapped
    }

    if (deployment) {
      const status = rolloutStatus(deployment)
      if (status.done) return deployment
      if (status.failed) throw await rolloutFailure(clients, deployment, status.failed)
      if (status.message !== last) options.onProgress?.(status.message)
      last = status.message
      // A loader that failed for a reason no restart mends (the model is missing, corrupt, refused
      // or incompatible) fails the rollout now rather than at the deadline.
      if (Date.now() >= nextPodCheck) {
        nextPodCheck = Date.now() + POD_CHECK_MS
        const pods = await currentPods(clients, deployment).catch(() => [] as V1Pod[])
        const refused = serveRefused(pods)
        if (refused)
          throw new IncompatibleError(
            `rollout of ${target.namespace}/${target.name} cannot succeed: ${refused.pod}: ${refused.error.message}`,
            {
              suggestion: refused.error.suggestion,
            },
          )
        const permanent = permanentLoaderFailure(pods)
        if (permanent)
          throw await rolloutFailure(clients, deployment, `rollout of ${target.namespace}/${target.name} cannot succeed`, permanent)
      }
    }

    if (Date.now() >= deadline) {
      throw await rolloutFailure(
        clients,
        deployment,
        `rollout of ${target.namespace}/${target.name} did not finish in ${Math.round(options.timeoutMs / 1000)}s (${last})`,
      )
    }

    await sleep(pause)
    pause = Math.min(100, pause * 2)
  }
}

const POD_CHECK_MS = 1000

/** Loader exit codes that the same pod spec will meet again on every restart. */
const PERMANENT_LOADER_EXITS = new Set<number>([
  ExitCode.USAGE,
  ExitCode.NOT_FOUND,
  ExitCode.INTEGRITY,
  ExitCode.PERMISSION,
  ExitCode.INCOMPATIBLE,
])

function permanentLoaderFailure(pods: V1Pod[]): string | undefined {
  for (const pod of pods) {
    for (const status of pod.status?.initContainerStatuses ?? []) {
      const terminated = status.state?.terminated ?? status.lastState?.terminated
      if (terminated && PERMANENT_LOADER_EXITS.has(terminated.exitCode)) return podProblems(pod)[0]
    }
  }

  return undefined
}

/** An API container that exited 8 saying why in its log (serve refused the model): no restart mends that. */
function serveRefused(pods: V1Pod[]): {pod: string; error: IncompatibleError} | undefined {
  for (const pod of pods) {
    for (const status of pod.status?.containerStatuses ?? []) {
      const terminated = status.state?.terminated ?? status.lastState?.terminated
      const error = terminated?.exitCode === ExitCode.INCOMPATIBLE ? serveRefusal(terminated.message) : undefined
      if (error) return {pod: pod.metadata?.name ?? 'pod', error}
    }
  }

  return undefined
}

/** The pods of the Deployment's current pod template (its newest ReplicaSet), not those of earlier revisions. */
export async function currentPods(clients: KubeClients, deployment: V1Deployment): Promise<V1Pod[]> {
  const namespace = deployment.metadata!.namespace!
  const selector = Object.entries(deployment.spec?.selector?.matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',')
  const [pods, sets] = await Promise.all([
    clients.core.listNamespacedPod({namespace, labelSelector: selector}),
    clients.apps.listNamespacedReplicaSet({namespace, labelSelector: selector}),
  ])
  const revision = deployment.metadata?.annotations?.['deployment.kubernetes.io/revision']
  const newest = sets.items.find(
    rs =>
      rs.metadata?.ownerReferences?.some(o => o.uid === deployment.metadata?.uid) &&
      rs.metadata?.annotations?.['deployment.kubernetes.io/revision'] === revision,
  )
  const hash = newest?.metadata?.labels?.['pod-template-hash']
  return hash ? pods.items.filter(pod => pod.metadata?.labels?.['pod-template-hash'] === hash) : pods.items
}

async function rolloutFailure(
  clients: KubeClients,
  deployment: V1Deployment | undefined,
  headline: string,
  first?: string,
): Promise<RolloutError> {
  const found = deployment ? await diagnose(clients, deployment).catch(() => []) : []
  const reasons = first ? [first, ...found.filter(reason => reason !== first)] : found
  return new RolloutError(reasons.length > 0 ? `${headline}: ${reasons[0]}` : headline, {
    suggestion: reasons.length > 1 ? reasons.slice(1).join('; ') : 'mlops status shows the pods; kubectl describe pod gives the events',
  })
}

/** Why pods of the newest ReplicaSet are not available, most telling first. */
export async function diagnose(clients: KubeClients, deployment: V1Deployment): Promise<string[]> {
  const pods = await currentPods(clients, deployment)
  const reasons = new Set<string>()
  for (const pod of pods) for (const reason of podProblems(pod)) reasons.add(reason)
  return [...reasons]
}

function podProblems(pod: V1Pod): string[] {
  const name = pod.metadata?.name ?? 'pod'
  const problems: string[] = []
  for (const status of pod.status?.initContainerStatuses ?? []) {
    const terminated = status.state?.terminated ?? status.lastState?.terminated
    if (terminated && terminated.exitCode !== 0) {
      problems.push(`${name}: the model loader failed (exit ${terminated.exitCode}): ${loaderMessage(terminated.message)}`)
    }

    const waiting = status.state?.waiting
    if (waiting && /ImagePull|ErrImage|InvalidImageName/.test(waiting.reason ?? ''))
      problems.push(`${name}: cannot pull the loader image ${status.image}: ${waiting.reason} ${waiting.message ?? ''}`.trim())
  }

  for (const status of pod.status?.containerStatuses ?? []) {
    const waiting = status.state?.waiting
    const last = status.lastState?.terminated
    // Between two crashes a container is waiting (CrashLoopBackOff) or running again, loading: either way its last exit says why.
    const crashing =
      waiting?.reason === 'CrashLoopBackOff' ||
      (status.state?.running && !status.ready && (status.restartCount ?? 0) > 0 && last && last.exitCode !== 0)
    if (crashing) {
      problems.push(
        `${name}: container ${status.name} is crash-looping (exit ${last?.exitCode ?? '?'}): ${(last?.message ?? '').trim().split('\n').slice(-3).join(' | ') || 'no output'}`,
      )
    } else if (waiting && /ImagePull|ErrImage|InvalidImageName/.test(waiting.reason ?? '')) {
      problems.push(`${name}: cannot pull the API image ${status.image}: ${waiting.reason} ${waiting.message ?? ''}`.trim())
    } else if (status.state?.running && !status.ready) {
      problems.push(`${name}: container ${status.name} is running but not ready (its /ready probe fails: the model is not loaded)`)
    }
  }

  const scheduled = pod.status?.conditions?.find(c => c.type === 'PodScheduled')
  if (scheduled?.status === 'False') problems.push(`${name}: cannot be scheduled: ${scheduled.message ?? scheduled.reason ?? ''}`)
  const ready = pod.status?.conditions?.some(c => c.type === 'Ready' && c.status === 'True')
  // Nothing wrong found, and still not ready: say where it is, so a timeout never explains nothing.
  if (problems.length === 0 && !ready) problems.push(`${name}: not ready yet: ${podProgress(pod)}`)
  return problems
}

/** Where a pod is on its way to ready: its phase and each container's state, in words. */
function podProgress(pod: V1Pod): string {
  const states = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])].map(status => {
    const state = status.state
    const what = state?.running
      ? 'running'
      : state?.terminated
        ? `exited ${state.terminated.exitCode}`
        : `waiting${state?.waiting?.reason ? ` (${state.waiting.reason})` : ''}`
    return `${status.name} ${what}${status.restartCount ? `, ${status.restartCount} restarts` : ''}`
  })
  return [`phase ${pod.status?.phase ?? 'unknown'}`, ...states].join(', ')
}

/** The loader writes a JSON summary as its termination message (see LoaderSummary in the pod contract). */
function loaderMessage(message: string | undefined): string {
  if (!message) return 'no termination message'
  const summary = parseLoaderSummary(message)
  if (summary && !summary.ok) return `${summary.error.code}: ${summary.error.message}`
  // Not our summary (FallbackToLogsOnError gave the log tail): show its end.
  return message.trim().split('\n').slice(-3).join(' | ')
}
