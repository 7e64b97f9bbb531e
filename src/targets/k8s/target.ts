import {whileDeploying} from '../deploy-guard.js'
import {UsageError} from '../../errors.js'
import {requireCompatible, runtimeSupportFor} from '../../images/compat.js'
import {toYaml} from '../../manifests/render.js'
import {type Delivery, annotatedDelivery, annotatedModel} from '../../pod/contract.js'
import {formatTable} from '../../cli/table.js'
import {readState} from '../../state/project-state.js'
import type {DeployOutcome, Target, TargetContext} from '../target.js'
import {type AppliedObject, applyObjects} from './apply.js'
import {type KubeClients, kubeClients} from './client.js'
import {kubeError} from './errors.js'
import {diffObjects} from './diff.js'
import {type Revision, observedDeployment, readDeployment, revisions, rollbackTo} from './history.js'
import {nodePlatformWarning} from './node-platforms.js'
import {deploymentOf, renderRelease} from './release.js'
import {RolloutError, rolloutStatus, waitForRollout} from './rollout.js'
import {type ServedModel, servedModels} from './served.js'

export interface DeployResult extends DeployOutcome {
  namespace: string
  deployment: string
  dryRun: 'client' | 'server' | null
  /** How the pods get the model, and why that way. */
  delivery: Delivery & {reason: string}
  /** The images the pods run, as rendered (pinned by digest once mlops image push recorded one). */
  images: {loader: string; api: string}
  applied: AppliedObject[]
  rollout: string | null
  revision: string | null
}

export interface StatusResult {
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
export function kubernetesTarget({project, io}: TargetContext): Target {
  return {
    async deploy(request) {
      const started = Date.now()
      const seconds = () => (Date.now() - started) / 1000
      const clients = request.dryRun === 'client' ? undefined : kubeClients({context: request.context})
      const rendered = await renderRelease(project, request, clients)
      const {manifest, objects} = rendered
      const model = `${manifest.name}@${manifest.version}`
      const runtime = await runtimeSupportFor(rendered.values.images.api)
      requireCompatible(manifest, runtime.support, runtime.source, 'nothing was applied')

      const deployment = objects.find(o => o.kind === 'Deployment')
      if (!deployment) throw new UsageError('the manifests have no Deployment', {suggestion: 'check the templates in manifests/'})
      const target = {name: deployment.metadata.name, namespace: deployment.metadata.namespace ?? 'default'}
      const result: DeployResult = {
        model,
        sha256: manifest.sha256,
        namespace: target.namespace,
        deployment: target.name,
        dryRun: request.dryRun ?? null,
        delivery: {...rendered.delivery.delivery, reason: rendered.delivery.reason},
        images: {loader: rendered.values.images.loader, api: rendered.values.images.api},
        applied: [],
        rollout: null,
        revision: null,
        seconds: 0,
      }
      if (rendered.delivery.delivery.kind !== 'init-container' || request.delivery || project.values.deploy?.delivery)
        io.note(`delivery: ${rendered.delivery.delivery.kind} (${rendered.delivery.reason})`)
      if (clients) {
        // The platforms image push recorded for the API image that is deployed, against the nodes'.
        const pushed = (await readState(project.dir)).images?.api
        if (pushed?.platforms && pushed.pinned === rendered.values.images.api) {
          const warning = await nodePlatformWarning(
            clients,
            {ref: pushed.ref, platforms: pushed.platforms},
            rendered.values.deploy.nodeSelector,
          )
          if (warning) io.note(`Warning: ${warning}`)
        }
      }

      if (!clients) {
        if (!io.json) process.stdout.write(toYaml(rendered.files))
        return {...result, seconds: seconds()}
      }

      if (request.diff) {
        const patch = await diffObjects(clients, objects, {force: request.forceConflicts})
        io.log(patch || `no changes: the live objects already match ${model}`)
        return {...result, dryRun: 'server', seconds: seconds()}
      }

      const progress = await io.progress()
      progress.start(`Applying ${objects.length} objects for ${model} to ${clients.server}`)
      // Ctrl-C or SIGTERM: say what the cluster holds; with --atomic, a rollout under way is rolled back first.
      const revisionOf = (live?: {metadata?: {annotations?: Record<string, string>}}) =>
        live?.metadata?.annotations?.['deployment.kubernetes.io/revision']
      const revisionBefore = revisionOf(await readDeployment(clients, target).catch(() => undefined))
      let phase: 'applying' | 'rolling out' = 'applying'
      const stop = async () => {
        progress.stop()
        // What the controller made of the applied template (its revision), not the moment before it looked.
        const live = await observedDeployment(clients, target).catch(() => undefined)
        const revision = revisionOf(live) ?? '?'
        // The Deployment not (yet) changed by this run: nothing to roll back.
        if (!live || (phase === 'applying' && revision === revisionBefore))
          return (
            `stopped while applying the objects for ${model}: the Deployment is as it was` +
            `${revisionBefore ? ` (revision ${revisionBefore})` : ''}, other objects may be applied; mlops status shows what is live`
          )
        if (request.atomic) {
          const restored = await rollbackTo(clients, live, revisionBefore ? Number(revisionBefore) : undefined, {
            evenIfCurrent: true,
          }).catch(() => undefined)
          if (restored) return `rolled back to revision ${restored.revision} (${restored.model}@${restored.version}) (--atomic)`
          return `${model} (revision ${revision}) stays applied: there is no earlier revision to roll back to`
        }

        return `${model} is applied (revision ${revision}) and its rollout goes on in the cluster; mlops status follows it, mlops rollback undoes it`
      }

      try {
        return await whileDeploying(
          stop,
          async () => {
            result.applied = await applyObjects(clients, objects, {dryRun: request.dryRun === 'server', force: request.forceConflicts})
            for (const object of result.applied)
              io.log(`${object.kind.toLowerCase()}/${object.name} ${object.result}${request.dryRun ? ' (server dry run)' : ''}`)
            if (request.dryRun === 'server') return {...result, seconds: seconds()}

            phase = 'rolling out'
            const progressDeadline = (deployment.spec as {progressDeadlineSeconds?: number}).progressDeadlineSeconds ?? 600
            const live = await waitForRollout(clients, target, {
              timeoutMs: request.timeoutMs ?? (progressDeadline + 60) * 1000,
              onProgress: message => progress.text(`Waiting for ${target.namespace}/${target.name}: ${message}`),
            }).catch(async error => {
              if (!request.atomic || !(error instanceof RolloutError)) throw error
              throw await rollBackAfterFailure(clients, target, error, revisionBefore)
            })
            result.rollout = rolloutStatus(live).message
            result.revision = live.metadata?.annotations?.['deployment.kubernetes.io/revision'] ?? null
            progress.succeed(`Deployed ${model}`)
            io.log(
              `deployment ${target.namespace}/${target.name} rolled out: ${model} (sha256:${manifest.sha256.slice(0, 12)}), ${result.rollout}, revision ${result.revision}`,
            )
            return {...result, seconds: seconds()}
          },
          {json: io.json},
        )
      } finally {
        progress.stop()
      }
    },

    async status(where) {
      const target = deploymentOf(project, where)
      const clients = kubeClients({context: where.context})
      const deployment = await readDeployment(clients, target)
      const annotations = deployment.spec?.template?.metadata?.annotations ?? {}
      const pod = deployment.spec?.template?.spec
      const [history, served] = await Promise.all([revisions(clients, deployment), servedModels(clients, deployment)])
      const model = annotatedModel(annotations)
      const status = deployment.status ?? {}
      const result: StatusResult = {
        ...{namespace: target.namespace, deployment: target.name},
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
      }
      io.log(statusText(result))
      return result
    },

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
        return {...target, deployment: target.name, deleted}
      }

      for (const {apiVersion, kind} of KINDS) {
        try {
          await clients.objects.delete({apiVersion, kind, metadata: {name: target.name, namespace: target.namespace}})
          deleted.push(`${kind.toLowerCase()}/${target.name}`)
        } catch (error) {
          if ((error as {code?: number}).code === 404) continue
          throw kubeError(error, clients.server, `deleting ${kind} ${target.namespace}/${target.name}`)
        }
      }

      io.log(
        deleted.length > 0
          ? `deleted ${deleted.join(', ')} in ${target.namespace}`
          : `nothing of ${target.name} was left in ${target.namespace}`,
      )
      return {...target, deployment: target.name, deleted}
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

    async rollback(where) {
      const target = deploymentOf(project, where)
      const clients = kubeClients({context: where.context})
      const restored = await rollbackTo(clients, await readDeployment(clients, target), where.toRevision)
      await waitForRollout(clients, target, {timeoutMs: where.timeoutMs})
      const model = `${restored.model}@${restored.version}`
      io.log(`deployment ${target.namespace}/${target.name} rolled back to revision ${restored.revision}: ${model}`)
      return {...target, deployment: target.name, revision: restored.revision, model}
    },
  }
}

function statusText(result: StatusResult): string {
  return [
    `deployment ${result.namespace}/${result.deployment}: ${result.model.name}@${result.model.version} (sha256:${result.model.sha256?.slice(0, 12) ?? '?'})`,
    ...Object.entries(result.images).map(([container, image]) => `  ${container.padEnd(12)} ${image}`),
    `  delivery     ${result.delivery.kind === 'image-volume' ? `image volume ${result.delivery.image}` : 'init-container (the loader)'}`,
    `  replicas     ${result.replicas.available}/${result.replicas.desired} available, ${result.replicas.updated} updated, ${result.replicas.ready} ready (${result.rollout})`,
    ...result.conditions.map(c => `  ${c.type.padEnd(12)} ${c.status} ${c.reason ?? ''}`.trimEnd()),
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

/** --atomic: put the revision that was live back, and say so in the rollout error. */
async function rollBackAfterFailure(
  clients: KubeClients,
  target: {name: string; namespace: string},
  failure: RolloutError,
  revisionBefore: string | undefined,
): Promise<RolloutError> {
  try {
    const restored = await rollbackTo(clients, await readDeployment(clients, target), revisionBefore ? Number(revisionBefore) : undefined, {
      evenIfCurrent: true,
    })
    return new RolloutError(`${failure.message}; rolled back to revision ${restored.revision} (${restored.model}@${restored.version})`, {
      suggestion: failure.suggestion,
    })
  } catch (error) {
    return new RolloutError(`${failure.message}; not rolled back: ${(error as Error).message}`, {suggestion: failure.suggestion})
  }
}
