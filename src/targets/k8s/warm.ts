import type {V1DaemonSet, V1Pod} from '../../vendor/kubernetes.js'

import type {ProjectConfig} from '../../config/load.js'
import {NotFoundError, RolloutError, errorMessage} from '../../errors.js'
import type {ManifestValues} from '../../manifests/values.js'
import type {KubernetesObject} from '../../manifests/render.js'
import type {Delivery} from '../../pod/contract.js'
import {quoteServerText} from '../../util/text.js'
import {whileDeploying} from '../deploy-guard.js'
import type {TargetIO} from '../target.js'
import {applyObjects} from './apply.js'
import {type KubeClients, kubeClients} from './client.js'
import {apiStatus, kubeError} from './errors.js'
import {type Release, type ReleaseRequest, renderRelease} from './release.js'

/**
 * Warming: a short-lived DaemonSet on every node the Deployment's pods may go to (its
 * nodeSelector and tolerations) whose pods pull what those pods will need (the model image
 * of an image volume and the API image; with the loader, the loader and API images), then
 * it is removed. Ownerless, found again by its labels; a run killed with -9 leaves one that
 * the next warm replaces and the next deploy removes once its deadline has passed.
 */
export const WARM_LABEL = 'mlops.io/warm'
/** When the run that made it would have given up: past it, the DaemonSet is a leftover. */
export const WARM_UNTIL = 'mlops.io/warm-until'
const CONTAINER = 'warm'
/** Holds the pod up without work, and ends at once on SIGTERM (as PID 1, node would ignore it). */
const IDLE = ['node', '-e', "process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1 << 30)"]
const POLL_MS = 1000

export interface WarmResult {
  /** NAME@VERSION warmed for. */
  model: string
  namespace: string
  /** The DaemonSet that pulled the images (removed again). */
  daemonSet: string
  /** The delivery the Deployment uses: what was worth pulling follows from it. */
  delivery: Delivery['kind']
  /** The images every node now holds. */
  images: string[]
  /** The nodes warmed, by name. */
  nodes: string[]
  /** The warm DaemonSet an earlier run left (killed), removed first; null when there was none. */
  removedLeftover: string | null
  seconds: number
}

export interface WarmRequest extends ReleaseRequest {
  context?: string
  /** Default: the Deployment's progress deadline plus a minute, as deploy waits. */
  timeoutMs?: number
}

/**
 * mlops model warm: the release deploy would make (the same values, delivery and images), its
 * images pulled on every node its pods may go to. With the loader (no image volume) only the
 * loader and API images can be pulled ahead: each pod still downloads the model, and it says so.
 */
export async function warmRelease(project: ProjectConfig, request: WarmRequest, io: TargetIO): Promise<WarmResult> {
  const clients = kubeClients({context: request.context})
  const release = await renderRelease(project, request, clients)
  const {manifest, delivery} = release
  const model = `${manifest.name}@${manifest.version}`
  io.note(`delivery: ${delivery.delivery.kind} (${delivery.reason})`)
  if (delivery.delivery.kind === 'init-container')
    io.note(
      `the loader delivers ${model}: warming the loader and API images only, each pod still downloads the model ` +
        `(mlops model publish ${model} and deploy.delivery image-volume put the model itself on the nodes)`,
    )
  return warmNodes(clients, release, {timeoutMs: request.timeoutMs ?? warmTimeout(release), io, command: 'mlops model warm'})
}

/** As deploy waits for a rollout: the progress deadline (which grows with the model size) plus a minute. */
export const warmTimeout = (release: Release) => (release.values.deploy.progressDeadlineSeconds + 60) * 1000

/** The DaemonSet that makes every matching node pull the release's images; its pods only idle. */
export function warmDaemonSet(values: ManifestValues, until: Date): KubernetesObject {
  const {app, deploy, delivery, images, securityContext} = values
  const name = warmName(app.name)
  const labels = {[WARM_LABEL]: app.name, 'app.kubernetes.io/component': 'model-warm', 'app.kubernetes.io/managed-by': 'mlops'}
  const container = {
    imagePullPolicy: 'IfNotPresent',
    command: IDLE,
    resources: {requests: {cpu: '1m', memory: '16Mi'}, limits: {memory: '64Mi'}},
    securityContext,
  }
  const imageVolume = delivery.kind === 'image-volume'
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: {name, namespace: app.namespace, labels, annotations: {[WARM_UNTIL]: until.toISOString()}},
    spec: {
      selector: {matchLabels: {[WARM_LABEL]: app.name}},
      template: {
        // Not the Deployment's labels: a warm pod must never join its Service or count for its PodDisruptionBudget.
        metadata: {labels},
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 1,
          ...(deploy.imagePullSecrets ? {imagePullSecrets: deploy.imagePullSecrets} : {}),
          ...(deploy.nodeSelector ? {nodeSelector: deploy.nodeSelector} : {}),
          ...(deploy.tolerations ? {tolerations: deploy.tolerations} : {}),
          securityContext: {runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: {type: 'RuntimeDefault'}},
          // The loader's image, pulled and run for nothing: its container exits at once.
          ...(imageVolume ? {} : {initContainers: [{name: 'loader', image: images.loader, ...container, command: ['node', '-e', '']}]}),
          containers: [
            {
              name: CONTAINER,
              image: images.api,
              ...container,
              ...(imageVolume ? {volumeMounts: [{name: 'model', mountPath: values.pod.workdir, readOnly: true}]} : {}),
            },
          ],
          ...(imageVolume ? {volumes: [{name: 'model', image: {reference: delivery.image, pullPolicy: 'IfNotPresent'}}]} : {}),
        },
      },
    },
  }
}

export const warmName = (deployment: string) => `${deployment}-warm`

/** The images a warm pulls for a release: what its pods need that a node can keep. */
export function warmImages(values: ManifestValues): string[] {
  return values.delivery.kind === 'image-volume' ? [values.delivery.image, values.images.api] : [values.images.loader, values.images.api]
}

/**
 * Warms every node the release's pods may go to, waits until each has pulled, and removes
 * the DaemonSet again (also on failure and on Ctrl-C). A node whose pod cannot pull fails
 * the warm (exit 9) naming the node; no matching node at all is exit 3.
 */
export async function warmNodes(
  clients: KubeClients,
  release: Release,
  options: {timeoutMs: number; io: TargetIO; command: string},
): Promise<WarmResult> {
  const started = Date.now()
  const {values, manifest} = release
  const where = {name: warmName(values.app.name), namespace: values.app.namespace}
  const model = `${manifest.name}@${manifest.version}`
  const leftover = await removeLeftoverWarmer(clients, values.app, {staleOnly: false})
  if (leftover) options.io.note(`removed daemonset/${leftover}, left by an earlier warm`)
  const daemonSet = warmDaemonSet(values, new Date(started + options.timeoutMs))
  const namespace = release.objects.filter(object => object.kind === 'Namespace')
  const progress = await options.io.progress()
  progress.start(`Warming the nodes for ${model}`)
  const removed = async () => {
    progress.stop()
    await removeWarmer(clients, values.app)
    return `removed daemonset/${where.name} from ${where.namespace} (the warm); the Deployment is as it was`
  }

  try {
    return await whileDeploying(
      removed,
      async () => {
        // The namespace deploy would make, so that a warm can come before the first deploy.
        await applyObjects(clients, [...namespace, daemonSet])
        const nodes = await waitForWarm(clients, values.app, {
          deadline: started + options.timeoutMs,
          onProgress: text => progress.text(`Warming the nodes for ${model}: ${text}`),
        })
        return {
          model,
          namespace: where.namespace,
          daemonSet: where.name,
          delivery: values.delivery.kind,
          images: warmImages(values),
          nodes,
          removedLeftover: leftover ?? null,
          seconds: (Date.now() - started) / 1000,
        }
      },
      {json: options.io.json, command: options.command},
    )
  } finally {
    progress.stop()
    // A removal that fails (the API server gone) must not hide why the warm ended: say it, the next deploy removes it.
    await removeWarmer(clients, values.app).catch((error: unknown) =>
      options.io.note(
        `Warning: daemonset/${where.name} in ${where.namespace} not removed (${errorMessage(error)}); the next mlops model warm removes it, or mlops deploy once its deadline passed`,
      ),
    )
  }
}

/** "N nodes (NAMES) in Ss: IMAGES", after a warm. */
export function describeWarm(warm: WarmResult): string {
  const count = `${warm.nodes.length} node${warm.nodes.length === 1 ? '' : 's'}`
  return `${count} (${warm.nodes.join(', ')}) for ${warm.model} in ${warm.seconds.toFixed(1)}s: ${warm.images.join(', ')}`
}

/** Until every pod the DaemonSet wants is ready (its images pulled, its volume mounted): the nodes' names. */
async function waitForWarm(
  clients: KubeClients,
  app: {name: string; namespace: string},
  options: {deadline: number; onProgress(text: string): void},
): Promise<string[]> {
  const where = {name: warmName(app.name), namespace: app.namespace}
  const selector = `${WARM_LABEL}=${app.name}`
  for (;;) {
    let daemonSet: V1DaemonSet
    let pods: V1Pod[]
    try {
      daemonSet = await clients.apps.readNamespacedDaemonSet(where)
      pods = (await clients.core.listNamespacedPod({namespace: where.namespace, labelSelector: selector})).items
    } catch (error) {
      throw kubeError(error, clients.server, `reading daemonset ${where.namespace}/${where.name}`)
    }

    const status = daemonSet.status
    const observed = (status?.observedGeneration ?? 0) >= (daemonSet.metadata?.generation ?? 1)
    const wanted = status?.desiredNumberScheduled ?? 0
    if (observed && wanted === 0) {
      const nodeSelector = daemonSet.spec?.template.spec?.nodeSelector
      const selecting = nodeSelector
        ? Object.entries(nodeSelector)
            .map(([key, value]) => `${key}=${value}`)
            .join(',')
        : ''
      throw new NotFoundError(
        `no node to warm: none matches the Deployment's ${selecting ? `nodeSelector ${selecting} and ` : ''}tolerations`,
        {suggestion: 'check deploy.nodeSelector and deploy.tolerations against kubectl get nodes --show-labels'},
      )
    }

    const failed = pods.map(pullFailure).find(Boolean)
    if (failed)
      throw new RolloutError(failed, {
        suggestion: 'check the image reference, the registry and deploy.imagePullSecrets (mlops image secret)',
      })
    const ready = pods.filter(pod => isReady(pod) && !pod.metadata?.deletionTimestamp)
    if (observed && ready.length >= wanted && (status?.numberReady ?? 0) >= wanted) return ready.map(nodeOf).sort()
    options.onProgress(`${ready.length} of ${wanted} node${wanted === 1 ? '' : 's'} ready`)
    if (Date.now() >= options.deadline) {
      const waiting = pods.filter(pod => !isReady(pod)).map(pod => `${nodeOf(pod)} (${podState(pod)})`)
      throw new RolloutError(
        `warming timed out: ${ready.length} of ${wanted} node${wanted === 1 ? '' : 's'} pulled the images; not yet: ${waiting.join(', ') || 'no pod yet'}`,
        {suggestion: 'pass a longer --timeout, or check the nodes with kubectl describe node'},
      )
    }

    await new Promise(resolve => {
      setTimeout(resolve, POLL_MS)
    })
  }
}

const isReady = (pod: V1Pod) => pod.status?.conditions?.some(c => c.type === 'Ready' && c.status === 'True') ?? false

/** The node a DaemonSet pod is for: where it was bound, else the node its affinity names. */
function nodeOf(pod: V1Pod): string {
  const bound = pod.spec?.nodeName
  const affinity =
    pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms?.[0]?.matchFields?.[0]?.values?.[0]
  return quoteServerText(bound ?? affinity ?? pod.metadata?.name ?? 'a node')
}

const PULL_FAILURE = /ImagePull|ErrImage|InvalidImageName/

/**
 * "node N cannot pull IMAGE: REASON MESSAGE" for a pod whose node failed to pull one of its images, on one line.
 * An image volume's failed pull is reported on the container that mounts it: the image named is the one
 * the kubelet's message names, the model image, not the container's.
 */
function pullFailure(pod: V1Pod): string | undefined {
  const volumes = (pod.spec?.volumes ?? []).flatMap(volume => (volume.image?.reference ? [volume.image.reference] : []))
  for (const status of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
    const waiting = status.state?.waiting
    if (!waiting || !PULL_FAILURE.test(waiting.reason ?? '')) continue
    const image = volumes.find(reference => waiting.message?.includes(reference)) ?? status.image ?? 'an image'
    return `node ${nodeOf(pod)} cannot pull ${quoteServerText(image, 200)}: ${quoteServerText(`${waiting.reason} ${waiting.message ?? ''}`.trim(), 300)}`
  }

  return undefined
}

function podState(pod: V1Pod): string {
  const states = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])].map(status => {
    const state = status.state
    return `${status.name} ${state?.running ? 'running' : state?.terminated ? `exited ${state.terminated.exitCode}` : `waiting${state?.waiting?.reason ? ` ${state.waiting.reason}` : ''}`}`
  })
  return quoteServerText([`phase ${pod.status?.phase ?? 'unknown'}`, ...states].join(', '), 200)
}

/**
 * Removes this Deployment's warm DaemonSet when there is one (any, or only one past its deadline:
 * left by a killed run), with its pods; the name removed. A deployer who may not read
 * DaemonSets, or a namespace not there yet, has none to remove.
 */
export async function removeLeftoverWarmer(
  clients: KubeClients,
  app: {name: string; namespace: string},
  options: {staleOnly: boolean},
): Promise<string | undefined> {
  const name = warmName(app.name)
  let found: V1DaemonSet
  try {
    found = await clients.apps.readNamespacedDaemonSet({name, namespace: app.namespace})
  } catch (error) {
    if ([403, 404].includes(apiStatus(error) ?? 0)) return undefined
    throw kubeError(error, clients.server, `reading daemonset ${app.namespace}/${name}`)
  }

  if (found.metadata?.labels?.[WARM_LABEL] !== app.name) return undefined
  if (options.staleOnly && !(Date.parse(found.metadata?.annotations?.[WARM_UNTIL] ?? '') < Date.now())) return undefined
  await removeWarmer(clients, app)
  return name
}

/** The DaemonSet, then its pods without a grace period: nothing of the warm stays in the API server. */
async function removeWarmer(clients: KubeClients, app: {name: string; namespace: string}): Promise<void> {
  const name = warmName(app.name)
  try {
    await clients.apps.deleteNamespacedDaemonSet({name, namespace: app.namespace, propagationPolicy: 'Background'})
  } catch (error) {
    if (apiStatus(error) !== 404) throw kubeError(error, clients.server, `removing daemonset ${app.namespace}/${name}`)
  }

  try {
    await clients.core.deleteCollectionNamespacedPod({
      namespace: app.namespace,
      labelSelector: `${WARM_LABEL}=${app.name}`,
      gracePeriodSeconds: 0,
    })
  } catch (error) {
    if (apiStatus(error) !== 404) throw kubeError(error, clients.server, `removing the pods of daemonset ${app.namespace}/${name}`)
  }
}
