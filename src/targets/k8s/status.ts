import {formatTable} from '../../cli/table.js'
import type {ProjectConfig} from '../../config/load.js'
import {type Delivery, annotatedDelivery, annotatedModel} from '../../pod/contract.js'
import type {Locator, TargetIO} from '../target.js'
import {type KubeClients, kubeClients} from './client.js'
import {type Revision, readDeployment, revisions} from './history.js'
import {leaseHolder} from './lease.js'
import {deploymentOf} from './release.js'
import {rolloutStatus} from './rollout.js'
import {type ServedModel, servedModels} from './served.js'
import {CANARY_SUFFIX, GATE_ANNOTATION, PLAN_ANNOTATION, SHADOW_SUFFIX} from './tracks.js'
import {parsePausedCanary} from './canary-state.js'

export interface KubernetesStatusResult {
  target: 'k8s'
  namespace: string
  deployment: string
  model: {name: string | null; version: string | null; sha256: string | null}
  images: Record<string, string>
  replicas: {desired: number; updated: number; ready: number; available: number}
  rollout: string
  conditions: Array<{type: string; status: string; reason?: string; message?: string}>
  /** How the current revision's pods get the model (from its annotations). */
  delivery: Delivery
  revisions: Revision[]
  /** What each running API container of the current revision reports at /metadata. */
  serving: Array<ServedModel & {matches: boolean}>
  /** A canary or shadow under way beside the stable (deploy --canary, --shadow): its version, pods and last gate readings. */
  tracks: Track[]
  /** Another mlops deploy, rollback, abort or delete under way on this Deployment (its lease), or null. */
  lock: {holder: string; renewedSecondsAgo: number} | null
}

export interface Track {
  track: 'canary' | 'shadow'
  deployment: string
  model: string
  replicas: {desired: number; ready: number}
  /** The last step's readings, as deploy printed them (canary only; null before the first). */
  lastGate: string | null
  /** deploy --pause: the step the canary waits at for mlops promote (null: a deploy is running it, or it is a shadow). */
  pausedAt: number | null
}

/** status --target k8s: the Deployment's current revision, its history, and what its pods serve. */
export async function clusterStatus(project: ProjectConfig, io: TargetIO, where: Locator): Promise<KubernetesStatusResult> {
  const target = deploymentOf(project, where)
  const clients = kubeClients({context: where.context})
  const deployment = await readDeployment(clients, target)
  const annotations = deployment.spec?.template?.metadata?.annotations ?? {}
  const pod = deployment.spec?.template?.spec
  const [history, served, tracks, lock] = await Promise.all([
    revisions(clients, deployment),
    servedModels(clients, deployment),
    liveTracks(clients, target),
    leaseHolder(clients, target),
  ])
  const model = annotatedModel(annotations)
  const status = deployment.status ?? {}
  const result: KubernetesStatusResult = {
    target: 'k8s',
    namespace: target.namespace,
    deployment: target.name,
    model,
    images: Object.fromEntries([...(pod?.initContainers ?? []), ...(pod?.containers ?? [])].map(c => [c.name, c.image ?? ''])),
    replicas: {
      desired: deployment.spec?.replicas ?? 0,
      updated: status.updatedReplicas ?? 0,
      ready: status.readyReplicas ?? 0,
      available: status.availableReplicas ?? 0,
    },
    rollout: rolloutStatus(deployment).message,
    delivery: annotatedDelivery(annotations),
    conditions: (status.conditions ?? []).map(c => ({type: c.type, status: c.status, reason: c.reason, message: c.message})),
    revisions: history.map(({replicaSet: _, ...revision}) => revision),
    serving: served.map(pod => ({...pod, matches: pod.sha256 !== null && pod.sha256 === model.sha256})),
    tracks,
    lock,
  }
  io.log(statusText(result))
  return result
}

/** The step a paused canary waits at; a record that is not one mlops wrote shows as none (promote says why). */
function pausedAt(text: string | undefined, where: string): number | null {
  if (!text) return null
  try {
    return parsePausedCanary(text, where).pausedAt
  } catch {
    return null
  }
}

/** The canary and shadow Deployments of `target`, when there are (each read strictly: absent on any error). */
async function liveTracks(clients: KubeClients, target: {name: string; namespace: string}): Promise<Track[]> {
  const read = async (track: Track['track'], suffix: string): Promise<Track | undefined> => {
    const live = await clients.apps
      .readNamespacedDeployment({name: `${target.name}${suffix}`, namespace: target.namespace})
      .catch(() => undefined)
    if (!live) return undefined
    const model = annotatedModel(live.spec?.template?.metadata?.annotations ?? {})
    const gate = live.metadata?.annotations?.[GATE_ANNOTATION]
    return {
      track,
      deployment: live.metadata?.name ?? `${target.name}${suffix}`,
      model: `${model.name ?? '?'}@${model.version ?? '?'}`,
      replicas: {desired: live.spec?.replicas ?? 0, ready: live.status?.readyReplicas ?? 0},
      lastGate: typeof gate === 'string' ? gate.slice(0, 2000) : null,
      pausedAt: pausedAt(live.metadata?.annotations?.[PLAN_ANNOTATION], `deployment ${target.namespace}/${live.metadata?.name}`),
    }
  }

  const tracks = await Promise.all([read('canary', CANARY_SUFFIX), read('shadow', SHADOW_SUFFIX)])
  return tracks.filter((track): track is Track => track !== undefined)
}

function statusText(result: KubernetesStatusResult): string {
  return [
    `deployment ${result.namespace}/${result.deployment}: ${result.model.name}@${result.model.version} (sha256:${result.model.sha256?.slice(0, 12) ?? '?'})`,
    ...Object.entries(result.images).map(([container, image]) => `  ${container.padEnd(12)} ${image}`),
    `  delivery     ${result.delivery.kind === 'image-volume' ? `image volume ${result.delivery.image}` : 'init-container (the loader)'}`,
    `  replicas     ${result.replicas.available}/${result.replicas.desired} available, ${result.replicas.updated} updated, ${result.replicas.ready} ready (${result.rollout})`,
    ...result.conditions.map(c => `  ${c.type.padEnd(12)} ${c.status} ${c.reason ?? ''}`.trimEnd()),
    ...(result.lock ? [`  lock         ${result.lock.holder} is changing it (lease renewed ${result.lock.renewedSecondsAgo}s ago)`] : []),
    ...result.tracks.map(
      t =>
        `  ${t.track.padEnd(12)} ${t.deployment}: ${t.model}, ${t.replicas.ready}/${t.replicas.desired} ready` +
        `${t.pausedAt === null ? '' : `, paused at ${t.pausedAt}% (mlops promote / mlops abort)`}${t.lastGate ? `; last gate: ${t.lastGate}` : ''}`,
    ),
    ...result.serving.map(
      pod =>
        `  serving      ${pod.pod}: ${
          pod.error
            ? `unknown (${pod.error})`
            : `${pod.name ?? '?'}@${pod.version ?? '?'} sha256:${pod.sha256!.slice(0, 12)}${pod.matches ? '' : ' (NOT the deployed model)'}${pod.ready ? '' : ', not ready'}`
        }`,
    ),
    '',
    formatTable(
      ['REVISION', 'MODEL', 'SHA256', 'REPLICAS', 'CREATED'],
      result.revisions.map(r => [
        `${r.revision}${r.current ? ' *' : ''}`,
        `${r.model}@${r.version}`,
        r.sha256?.slice(0, 12) ?? '-',
        String(r.replicas),
        r.created ?? '-',
      ]),
    ),
  ].join('\n')
}
