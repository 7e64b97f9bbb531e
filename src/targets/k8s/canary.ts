/**
 * deploy --canary: the new version as a second Deployment (<name>-canary) behind the same Service,
 * its pods added beside the stable ones (replica ratio, no traffic router: the stable is never
 * shrunk, so capacity, the PodDisruptionBudget and the HPA stay as they are), plus a canary-only
 * Service for checks. At each step the canary gets its share of pods, then, after the interval,
 * the gates read both tracks: their /metrics through the API server's pod proxy (error rate and
 * p99 over the interval, and the share of requests each served), and the model gate: the
 * version's reference set sent to a pod of each track, their answers compared (label agreement).
 * A failed gate aborts: the canary's objects are removed, the stable was never changed, exit 13
 * with the readings. Passing every step promotes: the caller applies the release to the stable
 * Deployment as one revision, then the canary goes.
 */
import type {V1Deployment, V1Pod} from '../../vendor/kubernetes.js'
import {setTimeout as sleep} from 'node:timers/promises'

import {GateError, NotFoundError, errorMessage} from '../../errors.js'
import type {KubernetesObject} from '../../manifests/render.js'
import {API_PORT_NAME, CONTAINERS} from '../../pod/contract.js'
import {type Answers, compareAnswers, formatShare} from '../../predict/compare-rules.js'
import {askServer} from '../../predict/compare.js'
import {SHADOW_RESULTS, type ShadowResult} from '../../serve/shadow.js'
import type {ModelStore} from '../../store/model-store.js'
import type {ModelManifest} from '../../store/manifest.js'
import type {CanaryGates, CanaryPlan} from '../canary-plan.js'
import {applyObjects, mergePatch} from './apply.js'
import type {KubeClients} from './client.js'
import type {ShadowPhase} from './shadow.js'
import {CANARY_SUFFIX, GATE_ANNOTATION, PLAN_ANNOTATION, TRACK_LABEL} from './tracks.js'
import {kubeError} from './errors.js'
import {forwardPort, readyPod} from './port-forward.js'
import {currentPods, waitForRollout} from './rollout.js'

export {CANARY_SUFFIX, TRACK_LABEL} from './tracks.js'

/** What the tracks' counters said over one step's interval. */
export interface TrackReading {
  pods: number
  requests: number
  errors: number
  errorRate: number | null
  /** Upper bound of the histogram bucket that holds the 99th percentile, in seconds. */
  p99: number | null
}

export interface CanaryStep {
  /** The target share of pods, percent. */
  percent: number
  canaryReplicas: number
  stableReplicas: number
  /** Requests the canary served over all requests in the interval (null: no traffic). */
  measuredShare: number | null
  canary: TrackReading
  stable: TrackReading
  /** Label agreement on the reference set (null: no reference set, or no labels). */
  agreement: number | null
  failed: string[]
}

export interface CanaryResult {
  deployment: string
  service: string
  /** --shadow: the phase before the steps (null without it). */
  shadow: ShadowPhase | null
  steps: CanaryStep[]
  /** paused: deploy --pause stopped after a step (pausedAt); mlops promote goes on. */
  outcome: 'aborted' | 'paused' | 'promoted'
  pausedAt: number | null
}

/** The canary's Deployment and Service, made from the release's: same pod template, one more label. */
export function canaryObjects(release: KubernetesObject[], replicas: number): {deployment: KubernetesObject; service: KubernetesObject} {
  const stable = release.find(object => object.kind === 'Deployment')!
  const service = release.find(object => object.kind === 'Service')
  const name = `${stable.metadata.name}${CANARY_SUFFIX}`
  const spec = structuredClone(stable.spec) as {
    replicas?: number
    selector: {matchLabels: Record<string, string>}
    template: {metadata: {labels: Record<string, string>}}
  }
  const track = {[TRACK_LABEL]: 'canary'}
  spec.replicas = replicas
  spec.selector.matchLabels = {...spec.selector.matchLabels, ...track}
  spec.template.metadata.labels = {...spec.template.metadata.labels, ...track}
  const metadata = {...stable.metadata, name, labels: {...(stable.metadata.labels as Record<string, string>), ...track}}
  return {
    deployment: {...stable, metadata, spec},
    service: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {name, namespace: stable.metadata.namespace, labels: metadata.labels},
      spec: {selector: spec.selector.matchLabels, ports: (service?.spec as {ports?: unknown})?.ports ?? []},
    },
  }
}

/** Canary pods beside `stable` for a target share of all pods: at least one. */
export function canaryReplicas(percent: number, stable: number): number {
  return Math.max(1, Math.round((stable * percent) / (100 - percent)))
}

export interface CanaryRun {
  clients: KubeClients
  store: ModelStore
  manifest: ModelManifest
  objects: KubernetesObject[]
  plan: CanaryPlan
  timeoutMs: number
  onProgress: (text: string) => void
  onStep: (step: CanaryStep) => void
  /** deploy --pause: the record mlops promote reads, for a pause after the step at `pausedAt` with `remaining` to go. */
  pauseRecord?: (pausedAt: number, remaining: number[]) => string
  /** Before each change (a step's scaling, what follows its interval): throws when this run may no longer change the release (its lease was lost). */
  beforeChange?: () => Promise<void>
}

/**
 * Every step short of 100: the canary scaled to its share, the interval waited, the gates read.
 * Returns the steps when all passed (the caller promotes), or, with a pause record, after the
 * first step that passed (pausedAt: the record is on the canary); throws exit 13 after removing
 * the canary when a gate fails.
 */
export async function runCanarySteps(run: CanaryRun): Promise<{steps: CanaryStep[]; pausedAt: number | null}> {
  const {clients, objects, plan} = run
  const stableObject = objects.find(object => object.kind === 'Deployment')!
  const where = {name: stableObject.metadata.name, namespace: stableObject.metadata.namespace ?? 'default'}
  const stable = await readStable(clients, where, '--canary', 'compare with')
  const stableReplicas = stable.spec?.replicas ?? 1
  const canaryWhere = {name: `${where.name}${CANARY_SUFFIX}`, namespace: where.namespace}
  const reference = await run.store.reference(run.manifest)
  const steps: CanaryStep[] = []
  let agreement: number | null | undefined
  for (const [index, percent] of plan.steps.entries()) {
    if (percent >= 100) break
    await run.beforeChange?.()
    const replicas = canaryReplicas(percent, stableReplicas)
    const {deployment, service} = canaryObjects(objects, replicas)
    run.onProgress(
      `Canary at ${percent}%: ${replicas} pod${replicas === 1 ? '' : 's'} of ${run.manifest.name}@${run.manifest.version} beside ${stableReplicas}`,
    )
    await applyObjects(clients, [deployment, service])
    const canary = await waitForRollout(clients, canaryWhere, {
      timeoutMs: run.timeoutMs,
      onProgress: text => run.onProgress(`Canary: ${text}`),
    })
    if (agreement === undefined) agreement = reference ? await measureAgreement(clients, stable, canary, reference.inputs) : null
    const before = await trackCounters(clients, stable, canary)
    run.onProgress(`Canary at ${percent}%: watching both tracks for ${Math.round(plan.intervalMs / 1000)}s`)
    await sleep(plan.intervalMs)
    await run.beforeChange?.()
    const after = await trackCounters(clients, stable, canary)
    const step = judge(
      percent,
      {canary: replicas, stable: stableReplicas},
      reading(intervalCounters(before.canary, after.canary), after.canary.size),
      reading(intervalCounters(before.stable, after.stable), after.stable.size),
      agreement,
      plan.gates,
    )
    steps.push(step)
    run.onStep(step)
    const paused = step.failed.length === 0 && run.pauseRecord ? run.pauseRecord(percent, plan.steps.slice(index + 1)) : undefined
    await annotate(clients, canaryWhere, {
      [GATE_ANNOTATION]: describeStep(step).slice(0, 2000),
      ...(paused && {[PLAN_ANNOTATION]: paused}),
    }).catch((error: unknown) => {
      // Without its record a pause could not be promoted: that one must land.
      if (paused) throw error
    })
    if (paused) return {steps, pausedAt: percent}
    if (step.failed.length > 0) {
      await removeCanary(clients, where)
      throw new GateError(
        `canary ${run.manifest.name}@${run.manifest.version} failed at ${percent}%: ${step.failed.join('; ')}; the canary was removed, ${where.name} serves on unchanged`,
        {
          suggestion:
            'mlops status shows the stable track; fix the version, or loosen the gate (--min-agreement, deploy.canary in mlops.yaml)',
        },
      )
    }
  }

  return {steps, pausedAt: null}
}

/** Sets (a string) or removes (null) annotations of an object (a Deployment unless said) with a merge patch: safe to repeat. */
export async function annotate(
  clients: KubeClients,
  where: {name: string; namespace: string},
  annotations: Record<string, string | null>,
  type: {apiVersion: string; kind: string} = {apiVersion: 'apps/v1', kind: 'Deployment'},
): Promise<void> {
  try {
    await mergePatch(clients, {...type, metadata: {...where, annotations}})
  } catch (error) {
    throw kubeError(error, clients.server, `annotating ${type.kind.toLowerCase()} ${where.namespace}/${where.name}`)
  }
}

/** The stable Deployment a canary or shadow is measured against; none is exit 3 (a first deploy has nothing to compare with). */
export async function readStable(
  clients: KubeClients,
  where: {name: string; namespace: string},
  flag: '--canary' | '--shadow',
  purpose: string,
): Promise<V1Deployment> {
  return clients.apps.readNamespacedDeployment(where).catch((error: unknown) => {
    if ((error as {code?: number}).code === 404)
      throw new NotFoundError(`deploy ${flag} needs a stable deployment ${where.namespace}/${where.name} to ${purpose}`, {
        suggestion: `deploy a first version without ${flag}`,
      })
    throw kubeError(error, clients.server, `reading deployment ${where.namespace}/${where.name}`)
  })
}

/**
 * Deletes `objects` (foreground; one already gone is fine), then waits (bounded) until they are
 * gone and no pod matches `podSelector`: nothing of a canary or shadow is left. True when any was there.
 */
export async function deleteAndWait(
  clients: KubeClients,
  namespace: string,
  objects: Array<{apiVersion: string; kind: string; name: string}>,
  podSelector: string,
): Promise<boolean> {
  let removed = false
  for (const {apiVersion, kind, name} of objects) {
    try {
      await clients.objects.delete(
        {apiVersion, kind, metadata: {name, namespace}},
        undefined,
        undefined,
        undefined,
        undefined,
        'Foreground',
      )
      removed = true
    } catch (error) {
      if ((error as {code?: number}).code !== 404) throw kubeError(error, clients.server, `deleting ${kind} ${namespace}/${name}`)
    }
  }

  // Foreground deletion keeps an object (with its finalizer) until its dependents are gone, and
  // the garbage collector drops it a moment after the last pod: wait for both, or status and the
  // next deploy would still see a canary that "was removed".
  const gone = async ({apiVersion, kind, name}: {apiVersion: string; kind: string; name: string}) =>
    clients.objects.read({apiVersion, kind, metadata: {name, namespace}}).then(
      () => false,
      (error: unknown) => (error as {code?: number}).code === 404,
    )
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const pods = await clients.core.listNamespacedPod({namespace, labelSelector: podSelector}).catch(() => ({items: [] as V1Pod[]}))
    if (pods.items.length === 0 && (await Promise.all(objects.map(gone))).every(Boolean)) break
    await sleep(250)
  }

  return removed
}

/** The canary of the stable Deployment `stable`: its Deployment and Service deleted, and its pods waited for (bounded): nothing left behind. */
export async function removeCanary(clients: KubeClients, stable: {name: string; namespace: string}): Promise<boolean> {
  const name = `${stable.name}${CANARY_SUFFIX}`
  return deleteAndWait(
    clients,
    stable.namespace,
    [
      {apiVersion: 'apps/v1', kind: 'Deployment', name},
      {apiVersion: 'v1', kind: 'Service', name},
    ],
    `app.kubernetes.io/name=${stable.name},${TRACK_LABEL}=canary`,
  )
}

/** Whether a canary of this deployment is there now (status shows it). */
export async function liveCanary(clients: KubeClients, where: {name: string; namespace: string}): Promise<V1Deployment | undefined> {
  return clients.apps.readNamespacedDeployment({name: `${where.name}${CANARY_SUFFIX}`, namespace: where.namespace}).catch(() => undefined)
}

/** Label agreement of a canary pod with a stable pod on the rows (each reached through a port-forward). */
export async function measureAgreement(
  clients: KubeClients,
  stable: V1Deployment,
  canary: V1Deployment,
  inputs: number[][],
): Promise<number | null> {
  const answersOf = async (deployment: V1Deployment): Promise<Answers> => {
    const {pod, port} = await readyPod(clients, deployment)
    const endpoint = await forwardPort(clients, {namespace: deployment.metadata!.namespace!, pod, port})
    return (await askServer(async () => ({...endpoint, pod}), inputs)).run
  }

  const [a, b] = await Promise.all([answersOf(stable), answersOf(canary)])
  return compareAnswers(inputs, a, b, {worst: 0, thresholds: {}}).agreement
}

export interface Counters {
  requests: number
  errors: number
  /** Cumulative counts per histogram bound (seconds), summed over the prediction routes. */
  buckets: Map<number, number>
  /** Mirrored requests by result (mlops_shadow_requests_total), and server processes mirroring or not now. */
  shadow: Map<string, number>
  shadowWorkers: {on: number; off: number}
}

const emptyCounters = (): Counters => ({requests: 0, errors: 0, buckets: new Map(), shadow: new Map(), shadowWorkers: {on: 0, off: 0}})

/** Both tracks' counters, pod by pod (the stable's current revision; the canary's). */
async function trackCounters(clients: KubeClients, stable: V1Deployment, canary: V1Deployment) {
  const [stableTrack, canaryTrack] = await Promise.all([podsCounters(clients, stable), podsCounters(clients, canary)])
  return {stable: stableTrack, canary: canaryTrack}
}

/** A pod whose API container runs and that is not going away (a terminating pod's /metrics answers 503 or nothing). */
export const isServing = (pod: V1Pod): boolean =>
  !pod.metadata?.deletionTimestamp &&
  Boolean(pod.status?.containerStatuses?.some(status => status.name === CONTAINERS.api && status.state?.running))

/** The counters of each serving pod of the Deployment's current revision, by pod uid. */
export async function podsCounters(clients: KubeClients, deployment: V1Deployment): Promise<Map<string, Counters>> {
  const pods = (await currentPods(clients, deployment)).filter(isServing)
  const each = await Promise.all(
    pods.map(async pod => [pod.metadata?.uid ?? pod.metadata!.name!, await podCounters(clients, pod)] as const),
  )
  return new Map(each)
}

/**
 * What happened between two reads, pod by pod, summed: a pod in both counts its difference (a
 * counter that went down is a restarted server, counted from zero); a pod that came meanwhile
 * counts all it has; one that went is not counted (its last requests are unknown), rather than
 * letting the others' lifetime totals pass for the interval's.
 */
export function intervalCounters(before: Map<string, Counters>, after: Map<string, Counters>): Counters {
  const delta = (x: number, y: number) => (y >= x ? y - x : y)
  const deltas = (x: Map<number | string, number>, y: Map<number | string, number>) =>
    new Map([...y].map(([key, value]) => [key, delta(x.get(key) ?? 0, value)]))
  let sum = emptyCounters()
  for (const [pod, now] of after) {
    const then = before.get(pod) ?? emptyCounters()
    sum = addCounters(sum, {
      requests: delta(then.requests, now.requests),
      errors: delta(then.errors, now.errors),
      buckets: deltas(then.buckets, now.buckets) as Map<number, number>,
      shadow: deltas(then.shadow, now.shadow) as Map<string, number>,
      shadowWorkers: now.shadowWorkers,
    })
  }

  return sum
}

/** One pod's counters, read from its API container's /metrics through the API server's pod proxy. */
export async function podCounters(clients: KubeClients, pod: V1Pod): Promise<Counters> {
  const port = pod.spec?.containers.find(c => c.name === CONTAINERS.api)?.ports?.find(p => p.name === API_PORT_NAME)?.containerPort
  try {
    const body = await clients.core.connectGetNamespacedPodProxyWithPath({
      name: `${pod.metadata!.name!}:${port}`,
      namespace: pod.metadata!.namespace!,
      path: 'metrics',
    })
    return parseCounters(typeof body === 'string' ? body : String(body))
  } catch (error) {
    throw kubeError(error, clients.server, `reading /metrics of pod ${pod.metadata?.name}: ${errorMessage(error).split('\n')[0]}`)
  }
}

/** Routes that are not predictions: probes and the metrics themselves. */
const NOT_PREDICTIONS = new Set(['/ready', '/health', '/metrics', '/metadata', '/v2/health/ready', '/v2/health/live'])
const SAMPLE =
  /^(mlops_http_requests_total|mlops_http_request_duration_seconds_bucket|mlops_shadow_requests_total|mlops_shadow_workers)\{([^}]*)\} (\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/

/** The prediction routes' requests, 5xx answers and latency buckets, and the shadow's counts, in serve's /metrics (Prometheus text), read strictly. */
export function parseCounters(text: string): Counters {
  const counters = emptyCounters()
  for (const line of text.slice(0, 1024 * 1024).split('\n')) {
    const match = SAMPLE.exec(line.trim())
    if (!match) continue
    const labels = Object.fromEntries([...match[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(m => [m[1], m[2]]))
    if (NOT_PREDICTIONS.has(labels.route ?? '')) continue
    const value = Number(match[3])
    if (!Number.isFinite(value) || value < 0) continue
    if (match[1] === 'mlops_shadow_requests_total') {
      if (SHADOW_RESULTS.includes(labels.result as ShadowResult)) counters.shadow.set(labels.result, value)
    } else if (match[1] === 'mlops_shadow_workers') {
      if (labels.state === 'on' || labels.state === 'off') counters.shadowWorkers[labels.state] = value
    } else if (match[1] === 'mlops_http_requests_total') {
      counters.requests += value
      if (Number(labels.status) >= 500) counters.errors += value
    } else {
      const bound = labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(labels.le)
      if (!Number.isNaN(bound)) counters.buckets.set(bound, (counters.buckets.get(bound) ?? 0) + value)
    }
  }

  return counters
}

export function addCounters(a: Counters, b: Counters): Counters {
  const sum = (x: Map<number | string, number>, y: Map<number | string, number>) => {
    const out = new Map(x)
    for (const [key, count] of y) out.set(key, (out.get(key) ?? 0) + count)
    return out
  }

  return {
    requests: a.requests + b.requests,
    errors: a.errors + b.errors,
    buckets: sum(a.buckets, b.buckets) as Map<number, number>,
    shadow: sum(a.shadow, b.shadow) as Map<string, number>,
    shadowWorkers: {on: a.shadowWorkers.on + b.shadowWorkers.on, off: a.shadowWorkers.off + b.shadowWorkers.off},
  }
}

/** A track's reading over an interval (its counters from intervalCounters). */
function reading(counters: Counters, pods: number): TrackReading {
  const {requests, errors} = counters
  const bounds = [...counters.buckets.keys()].sort((x, y) => x - y)
  const counts = bounds.map(bound => counters.buckets.get(bound) ?? 0)
  const total = counts.at(-1) ?? 0
  const index = counts.findIndex(count => count >= total * 0.99)
  return {
    pods,
    requests,
    errors,
    errorRate: requests > 0 ? errors / requests : null,
    p99: total > 0 && index >= 0 ? bounds[index] : null,
  }
}

/** The step's readings against the gates: each failure in words, with both readings. */
export function judge(
  percent: number,
  replicas: {canary: number; stable: number},
  canary: TrackReading,
  stable: TrackReading,
  agreement: number | null,
  gates: CanaryGates,
): CanaryStep {
  const failed: string[] = []
  // A canary that crashed (or was removed) gets no traffic, so no request of it fails: its absence is the failure.
  if (canary.pods < replicas.canary)
    failed.push(`${canary.pods} of ${replicas.canary} canary pods serving at the end of the step (crashed, restarting or removed)`)
  if (gates.minAgreement !== undefined && agreement !== null && agreement < gates.minAgreement)
    failed.push(`agreement with the stable on the reference set ${formatShare(agreement)} < ${gates.minAgreement}`)
  if (canary.errorRate !== null && canary.errorRate - (stable.errorRate ?? 0) > gates.maxErrorRateIncrease)
    failed.push(
      `error rate ${formatShare(canary.errorRate)} (${canary.errors} of ${canary.requests}) against the stable's ${formatShare(stable.errorRate ?? 0)}: more than ${gates.maxErrorRateIncrease} above`,
    )
  if (
    canary.p99 !== null &&
    stable.p99 !== null &&
    canary.requests >= 50 &&
    stable.requests >= 50 &&
    canary.p99 / stable.p99 > gates.maxP99Ratio
  )
    failed.push(`p99 ${canary.p99 * 1000} ms against the stable's ${stable.p99 * 1000} ms: more than ${gates.maxP99Ratio}×`)
  const all = canary.requests + stable.requests
  return {
    percent,
    canaryReplicas: replicas.canary,
    stableReplicas: replicas.stable,
    measuredShare: all > 0 ? canary.requests / all : null,
    canary,
    stable,
    agreement,
    failed,
  }
}

/** One line per step, as deploy prints it. */
export function describeStep(step: CanaryStep): string {
  const share = step.measuredShare === null ? 'no traffic' : `${formatShare(step.measuredShare)} of requests`
  const track = (r: TrackReading) => `${r.requests} requests, ${r.errors} errors${r.p99 === null ? '' : `, p99 ≤ ${r.p99 * 1000} ms`}`
  return [
    `step ${step.percent}%: ${step.canaryReplicas} canary + ${step.stableReplicas} stable pods, ${share}`,
    `canary ${track(step.canary)}; stable ${track(step.stable)}`,
    step.agreement === null ? 'no reference set to compare' : `agreement ${formatShare(step.agreement)}`,
    step.failed.length > 0 ? `FAILED: ${step.failed.join('; ')}` : 'passed',
  ].join(' | ')
}
