/**
 * deploy --shadow: the new version as a candidate Deployment (<name>-shadow) that no Service
 * selects, so it gets no user traffic. The stable's servers mirror a sample of their prediction
 * requests to it (serve --shadow-config, which every API container follows through the optional
 * ConfigMap <name>-shadow): fire-and-forget, bounded in queue and time, never changing an answer.
 * deploy writes the candidate's ready pods into that ConfigMap (pod addresses, so neither cluster
 * DNS nor a Service proxy stands between the two), nudges the stable's pods so that the kubelet
 * refreshes the file at once, waits until every stable server mirrors, watches for the interval,
 * then reads the stable's shadow counters (agreement of the candidate's answers with the stable's
 * on live traffic, and its errors and timeouts) and the model gate on the reference set. Either
 * way the shadow is then switched off and the candidate removed: nothing stays behind.
 */
import type {V1Deployment, V1Pod} from '../../vendor/kubernetes.js'
import {createHash} from 'node:crypto'
import {isIPv6, isIP} from 'node:net'
import {setTimeout as sleep} from 'node:timers/promises'

import {GateError, UsageError} from '../../errors.js'
import type {KubernetesObject} from '../../manifests/render.js'
import {API_ENV, API_PORT_NAME, CONTAINERS, SHADOW_CONFIG_KEY, shadowConfigMapName} from '../../pod/contract.js'
import {formatShare} from '../../predict/compare-rules.js'
import type {ModelStore} from '../../store/model-store.js'
import type {ModelManifest} from '../../store/manifest.js'
import type {CanaryGates} from '../canary-plan.js'
import {applyObjects} from './apply.js'
import {annotate, deleteAndWait, intervalCounters, isServing, measureAgreement, podCounters, podsCounters, readStable} from './canary.js'
import type {KubeClients} from './client.js'
import {LeaseLostError} from './lease.js'
import {currentPods, waitForRollout} from './rollout.js'
import {SHADOW_SUFFIX, TRACK_LABEL} from './tracks.js'

export {SHADOW_SUFFIX} from './tracks.js'
/** The annotation that makes the kubelet sync a stable pod (and so its ConfigMap volume) now, not at its next resync. */
export const SHADOW_NUDGE_ANNOTATION = 'mlops.io/shadow-config'
const APP_LABEL = 'app.kubernetes.io/name'
/** How long the stable's servers may take to follow a changed config (the kubelet refreshes a nudged pod in seconds; unnudged, in a minute or two). */
const FOLLOW_TIMEOUT_MS = 120_000

/** What the stable's servers counted of the requests they mirrored over the interval. */
export interface ShadowReading {
  agree: number
  disagree: number
  error: number
  timeout: number
  dropped: number
  /** agree / (agree + disagree): null when none was compared. */
  agreement: number | null
  /** (error + timeout) / every mirrored request answered or not: null when none was sent. */
  failureRate: number | null
}

export interface ShadowPhase {
  deployment: string
  /** Candidate pods, and the share of the stable's prediction requests mirrored to them. */
  replicas: number
  sample: number
  /** Stable pods that mirrored, of those serving. */
  mirroringPods: number
  stablePods: number
  reading: ShadowReading
  /** Label agreement with the stable on the version's reference set (null: none to compare). */
  referenceAgreement: number | null
  failed: string[]
}

export interface ShadowRun {
  clients: KubeClients
  store: ModelStore
  manifest: ModelManifest
  objects: KubernetesObject[]
  sample: number
  intervalMs: number
  gates: CanaryGates
  timeoutMs: number
  /** The mirror's timeout per request, ms. */
  requestTimeoutMs?: number
  onProgress: (text: string) => void
  /** The readings, before they are judged final (printed whether the phase passes or fails). */
  onPhase: (phase: ShadowPhase) => void
  /** After the interval, before the gates and the removal: throws when this run may no longer change the release (its lease was lost). */
  beforeChange?: () => Promise<void>
}

/** Candidate pods for a sample of the stable's traffic: enough for that share of its pods, at least one. */
export function shadowReplicas(sample: number, stable: number): number {
  return Math.max(1, Math.ceil(stable * sample))
}

/**
 * The candidate's Deployment, made from the release's: the same pod template under another app
 * name (so neither the Service nor the PodDisruptionBudget selects it), a track label, and no
 * shadow config of its own (it must not mirror).
 */
export function shadowCandidate(release: KubernetesObject[], replicas: number): KubernetesObject {
  const stable = release.find(object => object.kind === 'Deployment')!
  const name = `${stable.metadata.name}${SHADOW_SUFFIX}`
  const spec = structuredClone(stable.spec) as {
    replicas?: number
    selector: {matchLabels: Record<string, string>}
    template: {metadata: {labels: Record<string, string>}; spec: {containers: Array<{name: string; env?: Array<{name: string}>}>}}
  }
  const relabel = (labels: Record<string, string> | undefined) => ({...labels, [APP_LABEL]: name, [TRACK_LABEL]: 'shadow'})
  spec.replicas = replicas
  spec.selector.matchLabels = relabel(spec.selector.matchLabels)
  spec.template.metadata.labels = relabel(spec.template.metadata.labels)
  for (const container of spec.template.spec.containers)
    if (container.env) container.env = container.env.filter(env => env.name !== API_ENV.shadowConfig)
  return {...stable, metadata: {...stable.metadata, name, labels: relabel(stable.metadata.labels as Record<string, string>)}, spec}
}

/** Whether the stable's pods follow a shadow config (rendered by this mlops from the built-in templates, or a project's that mounts it). */
export function followsShadowConfig(deployment: V1Deployment): boolean {
  const api = deployment.spec?.template.spec?.containers.find(container => container.name === CONTAINERS.api)
  return Boolean(api?.env?.some(env => env.name === API_ENV.shadowConfig))
}

/**
 * The shadow phase: candidate up, stable mirroring, interval watched, gates read; always ends
 * with the shadow off and the candidate removed. Throws exit 13 when a gate failed.
 */
export async function runShadow(run: ShadowRun): Promise<ShadowPhase> {
  const {clients} = run
  const release = run.objects.find(object => object.kind === 'Deployment')!
  const where = {name: release.metadata.name, namespace: release.metadata.namespace ?? 'default'}
  const stable = await readStable(clients, where, '--shadow', 'mirror from')
  if (!followsShadowConfig(stable))
    throw new UsageError(
      `the pods of ${where.namespace}/${where.name} do not follow a shadow config (no ${API_ENV.shadowConfig}): ` +
        `they were rendered by an older mlops or from a template without the ${SHADOW_CONFIG_KEY} mount`,
      {suggestion: 'deploy once without --shadow (mlops render shows the mount), then shadow the next version'},
    )

  const replicas = shadowReplicas(run.sample, stable.spec?.replicas ?? 1)
  const candidateObject = shadowCandidate(run.objects, replicas)
  const model = `${run.manifest.name}@${run.manifest.version}`
  let lostLease = false
  try {
    run.onProgress(`Shadow: ${replicas} pod${replicas === 1 ? '' : 's'} of ${model}, no user traffic`)
    await applyObjects(clients, [candidateObject])
    const candidate = await waitForRollout(
      clients,
      {name: candidateObject.metadata.name, namespace: where.namespace},
      {timeoutMs: run.timeoutMs, onProgress: text => run.onProgress(`Shadow: ${text}`)},
    )
    const reference = await run.store.reference(run.manifest)
    const referenceAgreement = reference ? await measureAgreement(clients, stable, candidate, reference.inputs) : null

    const urls = candidateUrls(await currentPods(clients, candidate))
    if (urls.length === 0) throw new GateError(`shadow ${model}: no ready candidate pod with an address to mirror to`)
    const config = JSON.stringify({urls, sample: run.sample, ...(run.requestTimeoutMs ? {timeoutMs: run.requestTimeoutMs} : {})})
    run.onProgress(`Shadow: the stable's servers mirror ${formatShare(run.sample)} of requests to ${urls.length} pod(s)`)
    await writeShadowConfig(clients, where, config)
    const mirroring = await followConfig(clients, stable, config, 'on', FOLLOW_TIMEOUT_MS)
    if (mirroring.on === 0)
      throw new GateError(
        `shadow ${model}: none of the ${mirroring.pods} stable pods started mirroring within ${FOLLOW_TIMEOUT_MS / 1000}s`,
        {
          suggestion: `their ${SHADOW_CONFIG_KEY} comes from ConfigMap ${shadowConfigMapName(where.name)}: kubectl describe pod shows why it is not mounted`,
        },
      )

    const before = await podsCounters(clients, stable)
    run.onProgress(`Shadow: watching the mirrored requests for ${Math.round(run.intervalMs / 1000)}s`)
    await sleep(run.intervalMs)
    await run.beforeChange?.()
    const after = await podsCounters(clients, stable)
    const interval = intervalCounters(before, after)
    const phase = judgeShadow(
      {
        deployment: candidateObject.metadata.name,
        replicas,
        sample: run.sample,
        mirroringPods: mirroring.on,
        stablePods: mirroring.pods,
        reading: shadowReading(interval.shadow),
        referenceAgreement,
      },
      interval.requests > 0 ? interval.errors / interval.requests : 0,
      run.gates,
    )
    run.onPhase(phase)
    if (phase.failed.length > 0)
      throw new GateError(
        `shadow ${model} failed: ${phase.failed.join('; ')}; the candidate was removed, ${where.name} serves on unchanged`,
        {suggestion: 'fix the version, or loosen the gate (--min-agreement, deploy.canary in mlops.yaml)'},
      )
    return phase
  } catch (error) {
    lostLease = error instanceof LeaseLostError
    throw error
  } finally {
    // Passed or not, interrupted or failed: the stable stops mirroring and the candidate goes;
    // unless another run took the release over, whose shadow it may be by now.
    if (!lostLease) await removeShadow(clients, where).catch(() => false)
  }
}

/** The candidate's ready pods as base URLs (their addresses read strictly: an IP, nothing else). */
export function candidateUrls(pods: V1Pod[]): string[] {
  const urls: string[] = []
  for (const pod of pods) {
    const ready = pod.status?.conditions?.some(condition => condition.type === 'Ready' && condition.status === 'True')
    const ip = pod.status?.podIP
    const port = pod.spec?.containers.find(c => c.name === CONTAINERS.api)?.ports?.find(p => p.name === API_PORT_NAME)?.containerPort
    if (!ready || !ip || isIP(ip) === 0 || !Number.isInteger(port) || port! < 1 || port! > 65_535) continue
    urls.push(`http://${isIPv6(ip) ? `[${ip}]` : ip}:${port}`)
  }

  return urls.sort().slice(0, 64)
}

/** The ConfigMap the stable's servers follow: `text` ("" is no shadow), server-side applied; the name is mlops's by contract, so forced. */
async function writeShadowConfig(clients: KubeClients, where: {name: string; namespace: string}, text: string): Promise<void> {
  await applyObjects(
    clients,
    [
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: shadowConfigMapName(where.name),
          namespace: where.namespace,
          labels: {[APP_LABEL]: where.name, 'app.kubernetes.io/managed-by': 'mlops'},
        },
        data: {[SHADOW_CONFIG_KEY]: text},
      },
    ],
    {force: true},
  )
}

/**
 * Nudges every stable pod (an annotation with the config's hash, so that the kubelet syncs its
 * volumes now) and waits until their servers report the shadow `state` (mlops_shadow_workers),
 * at most `timeoutMs`. Returns how many pods got there, of how many.
 */
async function followConfig(
  clients: KubeClients,
  stable: V1Deployment,
  text: string,
  state: 'off' | 'on',
  timeoutMs: number,
): Promise<{on: number; pods: number}> {
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 16)
  const deadline = Date.now() + timeoutMs
  let pods: V1Pod[] = []
  let done = 0
  let nudged = new Set<string>()
  while (Date.now() < deadline) {
    pods = (await currentPods(clients, stable)).filter(isServing)
    for (const pod of pods) {
      const name = pod.metadata!.name!
      if (nudged.has(name) || pod.metadata?.annotations?.[SHADOW_NUDGE_ANNOTATION] === hash) continue
      await annotate(
        clients,
        {name, namespace: pod.metadata!.namespace!},
        {[SHADOW_NUDGE_ANNOTATION]: hash},
        {apiVersion: 'v1', kind: 'Pod'},
      ).catch(() => undefined)
    }

    nudged = new Set(pods.map(pod => pod.metadata!.name!))
    const states = await Promise.all(pods.map(async pod => podCounters(clients, pod).catch(() => undefined)))
    // A server whose counters cannot be read is not known to mirror: waiting for off, it counts as off; for on, as not yet.
    done = states.filter(counters =>
      state === 'on'
        ? counters !== undefined && counters.shadowWorkers.on > 0 && counters.shadowWorkers.off === 0
        : !counters || counters.shadowWorkers.on === 0,
    ).length
    if (done === pods.length && (pods.length > 0 || state === 'off')) break
    await sleep(500)
  }

  return {on: done, pods: pods.length}
}

/** The mirrored requests' results over the interval (from intervalCounters). */
export function shadowReading(counts: Map<string, number>): ShadowReading {
  const count = (result: string) => counts.get(result) ?? 0
  const [agree, disagree, error, timeout, dropped] = ['agree', 'disagree', 'error', 'timeout', 'dropped'].map(count)
  const compared = agree + disagree
  const sent = compared + error + timeout
  return {
    agree,
    disagree,
    error,
    timeout,
    dropped,
    agreement: compared > 0 ? agree / compared : null,
    failureRate: sent > 0 ? (error + timeout) / sent : null,
  }
}

/** The shadow's readings against the gates: each failure in words. */
export function judgeShadow(phase: Omit<ShadowPhase, 'failed'>, stableErrorRate: number, gates: CanaryGates): ShadowPhase {
  const failed: string[] = []
  const {reading, referenceAgreement} = phase
  if (gates.minAgreement !== undefined && referenceAgreement !== null && referenceAgreement < gates.minAgreement)
    failed.push(`agreement with the stable on the reference set ${formatShare(referenceAgreement)} < ${gates.minAgreement}`)
  if (gates.minAgreement !== undefined && reading.agreement !== null && reading.agreement < gates.minAgreement)
    failed.push(
      `agreement with the stable on mirrored requests ${formatShare(reading.agreement)} (${reading.agree} of ${reading.agree + reading.disagree}) < ${gates.minAgreement}`,
    )
  if (reading.failureRate !== null && reading.failureRate - stableErrorRate > gates.maxErrorRateIncrease)
    failed.push(
      `${reading.error} errors and ${reading.timeout} timeouts of ${reading.agree + reading.disagree + reading.error + reading.timeout} ` +
        `mirrored requests (${formatShare(reading.failureRate)}): more than ${gates.maxErrorRateIncrease} above the stable's ${formatShare(stableErrorRate)}`,
    )
  return {...phase, failed}
}

/** One line, as deploy prints it. */
export function describeShadow(phase: ShadowPhase): string {
  const r = phase.reading
  return [
    `shadow: ${phase.replicas} candidate pod${phase.replicas === 1 ? '' : 's'}, ${formatShare(phase.sample)} of requests mirrored by ${phase.mirroringPods} of ${phase.stablePods} stable pods`,
    `${r.agree} agree, ${r.disagree} disagree, ${r.error} errors, ${r.timeout} timeouts, ${r.dropped} dropped`,
    phase.referenceAgreement === null ? 'no reference set to compare' : `reference agreement ${formatShare(phase.referenceAgreement)}`,
    phase.failed.length > 0 ? `FAILED: ${phase.failed.join('; ')}` : 'passed',
  ].join(' | ')
}

/**
 * The shadow of the stable Deployment `stable` switched off and removed: its config emptied and
 * the stable's servers waited for (bounded), the candidate Deployment and its pods deleted, then
 * the ConfigMap. Safe to repeat; true when there was anything to remove.
 */
export async function removeShadow(clients: KubeClients, stable: {name: string; namespace: string}): Promise<boolean> {
  const configMap = {apiVersion: 'v1', kind: 'ConfigMap', metadata: {name: shadowConfigMapName(stable.name), namespace: stable.namespace}}
  const candidate = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {name: `${stable.name}${SHADOW_SUFFIX}`, namespace: stable.namespace},
  }
  const exists = async (object: KubernetesObject) =>
    clients.objects.read(object).then(
      () => true,
      () => false,
    )
  const [hasConfig, hasCandidate] = await Promise.all([exists(configMap), exists(candidate)])
  if (!hasConfig && !hasCandidate) return false
  if (hasConfig) {
    await writeShadowConfig(clients, stable, '')
    const live = await clients.apps.readNamespacedDeployment(stable).catch(() => undefined)
    if (live) await followConfig(clients, live, '', 'off', 30_000)
  }

  await deleteAndWait(
    clients,
    stable.namespace,
    [candidate, configMap].map(object => ({apiVersion: object.apiVersion, kind: object.kind, name: object.metadata.name})),
    `${APP_LABEL}=${candidate.metadata.name},${TRACK_LABEL}=shadow`,
  )
  return true
}
