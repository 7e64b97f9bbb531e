import type {Target, TargetContext} from '../target.js'
import {type KubeClients, kubeClients} from './client.js'
import {shadowConfigMapName} from '../../pod/contract.js'
import {CANARY_SUFFIX, SHADOW_SUFFIX} from './tracks.js'
import {ConflictError, NotFoundError} from '../../errors.js'
import {type KubernetesDeployResult, deployToCluster} from './deploy.js'
import {kubeError} from './errors.js'
import {withClusterLock} from './lease.js'
import {readDeployment, rollbackTo} from './history.js'
import {deploymentOf} from './release.js'
import {waitForRollout} from './rollout.js'
import {type KubernetesStatusResult, clusterStatus} from './status.js'

export interface KubernetesDeleteResult {
  target: 'k8s'
  name: string
  namespace: string
  deployment: string
  /** KIND/NAME of each object removed (the namespace stays). */
  deleted: string[]
}

export interface KubernetesRollbackResult {
  target: 'k8s'
  name: string
  namespace: string
  deployment: string
  revision: number
  /** NAME@VERSION of the revision restored. */
  model: string
}

export interface KubernetesAbortResult {
  target: 'k8s'
  name: string
  namespace: string
  deployment: string
  /** What was removed: the canary's Deployment and Service, the shadow's candidate and config (empty: there was none). */
  removed: string[]
}

export interface KubernetesResults {
  deploy: KubernetesDeployResult
  status: KubernetesStatusResult
  delete: KubernetesDeleteResult
}

/** The canary and the shadow of `target`, removed (each safe to repeat): what was there. */
async function removeTracks(clients: KubeClients, target: {name: string; namespace: string}): Promise<string[]> {
  const [{removeCanary}, {removeShadow}] = await Promise.all([import('./canary.js'), import('./shadow.js')])
  const removed: string[] = []
  if (await removeShadow(clients, target))
    removed.push(`deployment/${target.name}${SHADOW_SUFFIX}`, `configmap/${shadowConfigMapName(target.name)}`)
  if (await removeCanary(clients, target))
    removed.push(`deployment/${target.name}${CANARY_SUFFIX}`, `service/${target.name}${CANARY_SUFFIX}`)
  return removed
}

/** What deploy removes with the Deployment, in this order (the namespace stays). */
const KINDS = [
  {apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler'},
  {apiVersion: 'policy/v1', kind: 'PodDisruptionBudget'},
  {apiVersion: 'v1', kind: 'Service'},
  {apiVersion: 'apps/v1', kind: 'Deployment'},
]

/**
 * A Kubernetes cluster: the manifests rendered from templates/manifests/,
 * applied with server-side apply (field manager mlops), the rollout waited
 * for with kubectl's rules and diagnosed from the pods when it cannot finish.
 */
export function kubernetesTarget({project, io}: TargetContext): Target<KubernetesResults> {
  return {
    deploy: async request => deployToCluster(project, io, request),
    status: async where => clusterStatus(project, io, where),

    async delete(where) {
      const target = deploymentOf(project, where)
      const clients = kubeClients({context: where.context})
      const deleted: string[] = []
      const {confirmOrRefuse} = await import('../../cli/confirm.js')
      if (
        !(await confirmOrRefuse(
          `Delete deployment ${target.namespace}/${target.name} and its Service, HPA and PDB from ${clients.server}?`,
          {yes: where.yes, json: io.json},
        ))
      ) {
        io.log('Nothing deleted.')
        return {target: 'k8s', ...target, deployment: target.name, deleted}
      }

      await withClusterLock(clients, target, 'delete', io, async () => {
        // A canary or shadow under way goes first: its pods serve (or are mirrored to) on the stable's behalf.
        deleted.push(...(await removeTracks(clients, target)))
        for (const {apiVersion, kind} of KINDS) {
          try {
            await clients.objects.delete({apiVersion, kind, metadata: {name: target.name, namespace: target.namespace}})
            deleted.push(`${kind.toLowerCase()}/${target.name}`)
          } catch (error) {
            if ((error as {code?: number}).code === 404) continue
            throw kubeError(error, clients.server, `deleting ${kind} ${target.namespace}/${target.name}`)
          }
        }
      })

      io.log(
        deleted.length > 0
          ? `deleted ${deleted.join(', ')} in ${target.namespace}`
          : `nothing of ${target.name} was left in ${target.namespace}`,
      )
      return {target: 'k8s', ...target, deployment: target.name, deleted}
    },

    /** A port-forward to a ready pod of the project's Deployment. */
    async endpoint(where) {
      const {forwardPort, readyPod} = await import('./port-forward.js')
      const clients = kubeClients({context: where.context})
      const deployment = await readDeployment(clients, deploymentOf(project, where))
      const {pod, port} = await readyPod(clients, deployment)
      // One tunnel per connection the requests will use, opened before the clock starts
      // (at most 64 at once: beyond that they open as connections come).
      const forwarding = await forwardPort(clients, {
        namespace: deployment.metadata!.namespace!,
        pod,
        port,
        warm: Math.min(where.connections, 64),
      })
      io.note(`forwarding ${forwarding.url} -> pod ${forwarding.namespace}/${pod}:${port}`)
      return {
        url: forwarding.url,
        pod,
        get lastError() {
          return forwarding.lastError
        },
        close: () => forwarding.close(),
      }
    },

    async abort(where) {
      const target = deploymentOf(project, where)
      const clients = kubeClients({context: where.context})
      const removed = await withClusterLock(clients, target, 'abort', io, async () => removeTracks(clients, target))
      io.log(
        removed.length > 0
          ? `removed ${removed.join(', ')}; ${target.namespace}/${target.name} serves on unchanged`
          : `no canary or shadow of ${target.namespace}/${target.name} to abort; nothing was changed`,
      )
      return {target: 'k8s', ...target, deployment: target.name, removed}
    },

    async promote(where) {
      const target = deploymentOf(project, where)
      const clients = kubeClients({context: where.context})
      const [{liveCanary}, {parsePausedCanary, projectValuesFile}, {PLAN_ANNOTATION}] = await Promise.all([
        import('./canary.js'),
        import('./canary-state.js'),
        import('./tracks.js'),
      ])
      const canary = await liveCanary(clients, target)
      const name = `${target.namespace}/${target.name}${CANARY_SUFFIX}`
      if (!canary)
        throw new NotFoundError(`no canary beside ${target.namespace}/${target.name} to promote`, {
          suggestion: 'mlops deploy --canary --pause starts one that waits for promote',
        })
      const text = canary.metadata?.annotations?.[PLAN_ANNOTATION]
      if (!text)
        throw new ConflictError(`the canary ${name} is not paused: a deploy is running it, or one was killed while it did`, {
          suggestion: 'wait for that deploy; if it was killed, mlops abort removes the canary',
        })
      const record = parsePausedCanary(text, `deployment ${name}`)
      io.note(
        `promoting the canary of ${record.model}, paused at ${record.pausedAt}%: ${where.full ? 'straight to 100%' : `steps ${record.remaining.join(', ')}`}`,
      )
      return deployToCluster(project, io, {
        model: record.model,
        store: record.request.store,
        image: record.request.image,
        port: record.request.port,
        values: record.request.values.map(file => projectValuesFile(project.dir, file, `deployment ${name}`)),
        set: record.request.set,
        delivery: record.request.delivery,
        namespace: where.namespace,
        context: where.context,
        timeoutMs: where.timeoutMs,
        diff: false,
        atomic: false,
        forceConflicts: false,
        canary: {steps: where.full ? [100] : record.remaining, intervalMs: record.intervalMs, gates: record.gates, pause: record.pause},
        resume: {template: record.template},
      })
    },

    async rollback(where) {
      const target = deploymentOf(project, where)
      const clients = kubeClients({context: where.context})
      const restored = await withClusterLock(clients, target, 'rollback', io, async () => {
        const back = await rollbackTo(clients, await readDeployment(clients, target), where.toRevision)
        await waitForRollout(clients, target, {timeoutMs: where.timeoutMs})
        return back
      })
      const model = `${restored.model}@${restored.version}`
      io.log(`deployment ${target.namespace}/${target.name} rolled back to revision ${restored.revision}: ${model}`)
      return {target: 'k8s', ...target, deployment: target.name, revision: restored.revision, model}
    },
  }
}
