import {isAbsolute, relative, resolve} from 'node:path'

import {ConflictError, GateError, IncompatibleError, NotFoundError, UsageError} from '../../errors.js'
import {requireCompatible, runtimeSupportFor} from '../../images/compat.js'
import type {ProjectConfig} from '../../config/load.js'
import {toYaml} from '../../manifests/render.js'
import type {Delivery} from '../../pod/contract.js'
import {whileDeploying} from '../deploy-guard.js'
import type {DeployRequest, TargetIO} from '../target.js'
import {type AppliedObject, applyObjects} from './apply.js'
import {
  CANARY_SUFFIX,
  type CanaryResult,
  annotate,
  canaryObjects,
  describeStep,
  liveCanary,
  removeCanary,
  runCanarySteps,
} from './canary.js'
import {type PausedCanary, templateHash} from './canary-state.js'
import {PLAN_ANNOTATION} from './tracks.js'
import {annotatedModel} from '../../pod/contract.js'
import type {KubernetesObject} from '../../manifests/render.js'
import {type KubeClients, kubeClients} from './client.js'
import {diffObjects} from './diff.js'
import {LeaseLostError, takeClusterLock} from './lease.js'
import {observedDeployment, readDeployment, rollbackTo} from './history.js'
import {nodePlatformWarning} from './node-platforms.js'
import {type Release, renderRelease} from './release.js'
import {RolloutError, rolloutStatus, waitForRollout} from './rollout.js'
import {type ShadowPhase, describeShadow, removeShadow, runShadow} from './shadow.js'
import {type WarmResult, describeWarm, removeLeftoverWarmer, warmNodes, warmTimeout} from './warm.js'

export interface KubernetesDeployResult {
  target: 'k8s'
  /** NAME@VERSION deployed. */
  model: string
  sha256: string
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
  /** --prewarm: the nodes that pulled the images before the rollout; null without it. */
  prewarm: WarmResult | null
  /** --canary: the steps, each with both tracks' readings, before the promotion; null without it. */
  canary: CanaryResult | null
  seconds: number
}

type Where = {name: string; namespace: string}

const REVISION = 'deployment.kubernetes.io/revision'
const revisionOf = (live?: {metadata?: {annotations?: Record<string, string>}}) => live?.metadata?.annotations?.[REVISION]

/**
 * deploy --target k8s: render the release, refuse a model the API image cannot serve, then
 * (by --dry-run, --diff) print, diff or apply with server-side apply and wait for the rollout
 * with kubectl's rules; --atomic rolls a failed or interrupted rollout back.
 */
export async function deployToCluster(project: ProjectConfig, io: TargetIO, request: DeployRequest): Promise<KubernetesDeployResult> {
  const started = Date.now()
  const finished = (result: KubernetesDeployResult, change: Partial<KubernetesDeployResult> = {}) => ({
    ...result,
    ...change,
    seconds: (Date.now() - started) / 1000,
  })
  const clients = request.dryRun === 'client' ? undefined : kubeClients({context: request.context})
  const release = await renderRelease(project, request, clients)
  const {manifest, objects} = release
  const model = `${manifest.name}@${manifest.version}`
  const runtime = await runtimeSupportFor(release.values.images.api)
  requireCompatible(manifest, runtime.support, runtime.source, 'nothing was applied')

  const deployment = objects.find(o => o.kind === 'Deployment')
  if (!deployment) throw new UsageError('the manifests have no Deployment', {suggestion: 'check the templates in manifests/'})
  const where = {name: deployment.metadata.name, namespace: deployment.metadata.namespace ?? 'default'}
  const result: KubernetesDeployResult = {
    target: 'k8s',
    model,
    sha256: manifest.sha256,
    namespace: where.namespace,
    deployment: where.name,
    dryRun: request.dryRun ?? null,
    delivery: {...release.delivery.delivery, reason: release.delivery.reason},
    images: {loader: release.values.images.loader, api: release.values.images.api},
    applied: [],
    rollout: null,
    revision: null,
    prewarm: null,
    canary: null,
    seconds: 0,
  }
  if (release.delivery.delivery.kind !== 'init-container' || request.delivery || project.values.deploy?.delivery)
    io.note(`delivery: ${release.delivery.delivery.kind} (${release.delivery.reason})`)

  if (!clients) {
    if (!io.json) process.stdout.write(toYaml(release.files))
    return finished(result)
  }

  await warnOfNodePlatforms(clients, release, io)
  if (request.diff) {
    const patch = await diffObjects(clients, objects, {force: request.forceConflicts})
    io.log(patch || `no changes: the live objects already match ${model}`)
    return finished(result, {dryRun: 'server'})
  }

  // One release operation at a time on this deployment, from any machine (lease.ts).
  const lock = request.dryRun ? undefined : await takeClusterLock(clients, where, request.resume ? 'promote' : 'deploy', io)
  try {
    // A warm DaemonSet that a killed mlops model warm (or deploy --prewarm) left, past its deadline.
    if (!request.dryRun) {
      const leftover = await removeLeftoverWarmer(clients, release.values.app, {staleOnly: true})
      if (leftover) io.note(`removed daemonset/${leftover}, left by an earlier warm`)
    }

    // A shadow that a killed deploy left: the stable still mirrors to a candidate nobody watches.
    if (!request.dryRun && (await removeShadow(clients, where))) io.note(`removed the shadow of ${where.name}, left by an earlier deploy`)
    if (!request.dryRun) await settleLiveCanary(clients, where, objects, request, io)

    if (request.prewarm && !request.dryRun) {
      result.prewarm = await warmNodes(clients, release, {
        timeoutMs: request.timeoutMs ?? warmTimeout(release),
        io,
        command: 'mlops deploy',
      })
      io.note(`warmed ${describeWarm(result.prewarm)}`)
    }

    let planned = request.canary
    if (planned && !request.resume && !request.dryRun) {
      const stable = await readDeployment(clients, where).then(
        () => true,
        (error: unknown) => noStable(error),
      )
      if (!stable && planned.fromConfig) {
        // deploy.strategy (not a flag) on a first deploy: nothing to compare a canary or shadow with yet.
        io.note(
          `deploy.strategy: ${where.namespace}/${where.name} has no stable version yet to compare with; deploying ${model} all at once`,
        )
        planned = undefined
      } else if (stable) {
        // The release already live (a re-run): a canary of the same pods would measure nothing.
        const [check] = await applyObjects(clients, [deployment], {dryRun: true, force: request.forceConflicts})
        if (check.result === 'unchanged') {
          io.note(`${where.namespace}/${where.name} already runs this release (its pod template is unchanged): no canary or shadow to run`)
          planned = undefined
        }
      }
    }

    if (planned && !request.dryRun) {
      const plan = planned
      let shadow: ShadowPhase | null = null
      if (plan.shadow) {
        const {sample} = plan.shadow
        shadow = await withProgress(io, `Shadow of ${model}`, async progress =>
          whileDeploying(
            async () => {
              progress.stop()
              return (await removeShadow(clients, where))
                ? `the shadow was switched off and its candidate removed; ${where.name} serves on unchanged`
                : `nothing was changed; ${where.name} serves on`
            },
            // The phase removes its candidate itself, whatever happens.
            async () =>
              runShadow({
                clients,
                store: release.store,
                manifest,
                objects,
                sample,
                intervalMs: plan.intervalMs,
                gates: plan.gates,
                timeoutMs: request.timeoutMs ?? 5 * 60_000,
                onProgress: text => progress.text(text),
                onPhase: phase => io.log(describeShadow(phase)),
                beforeChange: lock?.ensureHeld,
              }),
            {json: io.json},
          ),
        )
      }

      const pauseRecord = plan.pause ? pauseRecorder(project, request, manifest, objects, plan) : undefined
      const {steps, pausedAt} = plan.steps.some(step => step < 100)
        ? await withProgress(io, `Canary of ${model}`, async progress =>
            whileDeploying(
              async () => {
                progress.stop()
                return (await removeCanary(clients, where))
                  ? `the canary was removed; ${where.name} serves on unchanged`
                  : `nothing was changed; ${where.name} serves on`
              },
              async () =>
                runCanarySteps({
                  clients,
                  store: release.store,
                  manifest,
                  objects,
                  plan,
                  timeoutMs: request.timeoutMs ?? 5 * 60_000,
                  onProgress: text => progress.text(text),
                  onStep: step => io.log(describeStep(step)),
                  pauseRecord,
                  beforeChange: lock?.ensureHeld,
                }).catch(async (error: unknown) => {
                  // A gate removes the canary itself; any other failure must not leave it serving either,
                  // unless another run took the release over (the canary may be its own by now).
                  if (!(error instanceof GateError) && !(error instanceof LeaseLostError))
                    await removeCanary(clients, where).catch(() => false)
                  throw error
                }),
              {json: io.json},
            ),
          )
        : {steps: [], pausedAt: null}
      result.canary = {
        deployment: `${where.name}${CANARY_SUFFIX}`,
        service: `${where.name}${CANARY_SUFFIX}`,
        shadow,
        steps,
        outcome: pausedAt === null ? 'promoted' : 'paused',
        pausedAt,
      }
      if (pausedAt !== null) {
        io.log(
          `canary ${model} paused at ${pausedAt}% beside ${where.namespace}/${where.name}: mlops promote goes on, mlops abort removes it`,
        )
        return finished(result)
      }

      io.note(`${steps.length > 0 ? 'every step' : 'the shadow'} passed: promoting ${model} to ${where.namespace}/${where.name}`)
    }

    // After a canary's or shadow's minutes (or a laptop's sleep): still this run's release to change.
    await lock?.ensureHeld()
    const progress = await io.progress()
    progress.start(`Applying ${objects.length} objects for ${model} to ${clients.server}`)
    const revisionBefore = revisionOf(await readDeployment(clients, where).catch(() => undefined))
    let phase: 'applying' | 'rolling out' = 'applying'
    // Ctrl-C or SIGTERM: say what the cluster holds; with --atomic, a rollout under way is rolled back first.
    const interrupted = async () => {
      progress.stop()
      return interruptReport(clients, where, {model, phase, revisionBefore, atomic: request.atomic})
    }

    try {
      return await whileDeploying(
        interrupted,
        async () => {
          result.applied = await applyObjects(clients, objects, {dryRun: request.dryRun === 'server', force: request.forceConflicts})
          for (const object of result.applied)
            io.log(`${object.kind.toLowerCase()}/${object.name} ${object.result}${request.dryRun ? ' (server dry run)' : ''}`)
          if (request.dryRun === 'server') return finished(result)

          phase = 'rolling out'
          const progressDeadline = (deployment.spec as {progressDeadlineSeconds?: number}).progressDeadlineSeconds ?? 600
          const live = await waitForRollout(clients, where, {
            timeoutMs: request.timeoutMs ?? (progressDeadline + 60) * 1000,
            onProgress: message => progress.text(`Waiting for ${where.namespace}/${where.name}: ${message}`),
          }).catch(async error => {
            // A failed rollout (9), or an API container that refuses the model (8): --atomic puts the last revision back either way.
            if (!request.atomic || !(error instanceof RolloutError || error instanceof IncompatibleError)) throw error
            throw await rollBackAfterFailure(clients, where, error, revisionBefore)
          })
          result.rollout = rolloutStatus(live).message
          result.revision = revisionOf(live) ?? null
          // Promoted: the stable serves the version now, so its canary goes.
          if (result.canary) await removeCanary(clients, where)
          progress.succeed(`Deployed ${model}`)
          io.log(
            `deployment ${where.namespace}/${where.name} rolled out: ${model} (sha256:${manifest.sha256.slice(0, 12)}), ${result.rollout}, revision ${result.revision}`,
          )
          return finished(result)
        },
        {json: io.json},
      )
    } finally {
      progress.stop()
    }
  } finally {
    await lock?.release()
  }
}

/** False for a Deployment that does not exist; any other failure to read it is thrown. */
function noStable(error: unknown): false {
  if (error instanceof NotFoundError) return false
  throw error
}

/**
 * A canary already beside the stable: paused (deploy --pause), it waits for mlops promote or
 * abort, so another deploy is refused (exit 4), unless this is that promote, whose release must
 * be the one canaried; not paused, a killed deploy left it serving: it is removed.
 */
async function settleLiveCanary(
  clients: KubeClients,
  where: Where,
  objects: KubernetesObject[],
  request: DeployRequest,
  io: TargetIO,
): Promise<void> {
  const live = await liveCanary(clients, where)
  if (!live) {
    if (request.resume) throw new NotFoundError(`no canary of ${where.namespace}/${where.name} to promote`)
    return
  }

  const paused = live.metadata?.annotations?.[PLAN_ANNOTATION]
  const canaryWhere = {name: `${where.name}${CANARY_SUFFIX}`, namespace: where.namespace}
  if (request.resume) {
    if (templateHash(canaryObjects(objects, 1).deployment) !== request.resume.template)
      throw new ConflictError(
        `the release rendered now is not the one canaried beside ${where.namespace}/${where.name} (mlops.yaml, the templates, the values or the images changed since)`,
        {suggestion: 'mlops abort, then deploy --canary again'},
      )
    // Going on: no longer paused, so a promote killed from here is a leftover like any other.
    await annotate(clients, canaryWhere, {[PLAN_ANNOTATION]: null})
    return
  }

  if (paused) {
    const model = annotatedModel(live.spec?.template?.metadata?.annotations ?? {})
    throw new ConflictError(
      `a canary of ${model.name ?? '?'}@${model.version ?? '?'} is paused beside ${where.namespace}/${where.name}: promote or abort it first`,
      {suggestion: 'mlops promote goes on with it; mlops abort removes it'},
    )
  }

  if (await removeCanary(clients, where)) io.note(`removed the canary of ${where.name}, left by an earlier deploy`)
}

/** deploy --pause: the record of a pause after a step, as mlops promote reads it (canary-state.ts). */
function pauseRecorder(
  project: ProjectConfig,
  request: DeployRequest,
  manifest: {name: string; version: string},
  objects: KubernetesObject[],
  plan: NonNullable<DeployRequest['canary']>,
): (pausedAt: number, remaining: number[]) => string {
  const values = request.values.map(file => {
    const inside = relative(project.dir, resolve(file))
    if (inside.startsWith('..') || isAbsolute(inside))
      throw new UsageError(`--values ${file}: with --pause, values files must lie inside the project (mlops promote reads them again)`)
    return inside
  })
  const template = templateHash(canaryObjects(objects, 1).deployment)
  return (pausedAt, remaining) => {
    const record: PausedCanary = {
      model: `${manifest.name}@${manifest.version}`,
      template,
      pausedAt,
      remaining,
      intervalMs: plan.intervalMs,
      gates: plan.gates,
      pause: true,
      request: {
        set: request.set,
        values,
        image: request.image,
        ...(request.delivery === undefined ? {} : {delivery: request.delivery}),
        port: request.port,
        store: Object.fromEntries(Object.entries(request.store).filter(([, value]) => value !== undefined)),
      },
    }
    return JSON.stringify(record)
  }
}

/** Runs `work` under a spinner that is stopped whatever happens. */
async function withProgress<T>(
  io: TargetIO,
  text: string,
  work: (progress: Awaited<ReturnType<TargetIO['progress']>>) => Promise<T>,
): Promise<T> {
  const progress = await io.progress()
  progress.start(text)
  try {
    return await work(progress)
  } finally {
    progress.stop()
  }
}

/** The platforms image push recorded for the API image that is deployed, against the nodes'. */
async function warnOfNodePlatforms(clients: KubeClients, release: Release, io: TargetIO): Promise<void> {
  const pushed = release.pushedApi
  if (!pushed?.platforms) return
  const warning = await nodePlatformWarning(clients, {ref: pushed.ref, platforms: pushed.platforms}, release.values.deploy.nodeSelector)
  if (warning) io.note(`Warning: ${warning}`)
}

/** What an interrupted deploy leaves in the cluster, in words; with --atomic, a rollout under way is rolled back first. */
async function interruptReport(
  clients: KubeClients,
  where: Where,
  state: {model: string; phase: 'applying' | 'rolling out'; revisionBefore?: string; atomic: boolean},
): Promise<string> {
  const {model, revisionBefore} = state
  // What the controller made of the applied template (its revision), not the moment before it looked.
  const live = await observedDeployment(clients, where).catch(() => undefined)
  const revision = revisionOf(live) ?? '?'
  // The Deployment not (yet) changed by this run: nothing to roll back.
  if (!live || (state.phase === 'applying' && revision === revisionBefore))
    return (
      `stopped while applying the objects for ${model}: the Deployment is as it was` +
      `${revisionBefore ? ` (revision ${revisionBefore})` : ''}, other objects may be applied; mlops status shows what is live`
    )
  if (state.atomic) {
    const restored = await rollbackTo(clients, live, revisionBefore ? Number(revisionBefore) : undefined, {evenIfCurrent: true}).catch(
      () => undefined,
    )
    if (restored) return `rolled back to revision ${restored.revision} (${restored.model}@${restored.version}) (--atomic)`
    return `${model} (revision ${revision}) stays applied: there is no earlier revision to roll back to`
  }

  return `${model} is applied (revision ${revision}) and its rollout goes on in the cluster; mlops status follows it, mlops rollback undoes it`
}

/** --atomic: put the revision that was live back, and say so in the failure (same exit code). */
async function rollBackAfterFailure(
  clients: KubeClients,
  where: Where,
  failure: IncompatibleError | RolloutError,
  revisionBefore: string | undefined,
): Promise<IncompatibleError | RolloutError> {
  const Failure = failure instanceof IncompatibleError ? IncompatibleError : RolloutError
  try {
    const restored = await rollbackTo(clients, await readDeployment(clients, where), revisionBefore ? Number(revisionBefore) : undefined, {
      evenIfCurrent: true,
    })
    return new Failure(`${failure.message}; rolled back to revision ${restored.revision} (${restored.model}@${restored.version})`, {
      suggestion: failure.suggestion,
    })
  } catch (error) {
    return new Failure(`${failure.message}; not rolled back: ${(error as Error).message}`, {suggestion: failure.suggestion})
  }
}
