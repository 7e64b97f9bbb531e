import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {deploymentTarget, refuseClusterFlags, renderFlags, renderFromFlags, resolveDeployModel, targetFlag, targetOf} from '../cli/render-flags.js'
import {UsageError} from '../errors.js'
import {requireCompatible, runtimeSupportFor} from '../images/compat.js'
import {imageNames} from '../images/names.js'
import {toYaml} from '../manifests/render.js'
import {installedRuntimeSupport} from '../runtime/capabilities.js'
import {deployDocker} from '../targets/docker.js'
import {type AppliedObject, applyObjects} from '../targets/k8s/apply.js'
import {kubeClients} from '../targets/k8s/client.js'
import {diffObjects} from '../targets/k8s/diff.js'
import {readDeployment, rollbackTo} from '../targets/k8s/history.js'
import {RolloutError, rolloutStatus, waitForRollout} from '../targets/k8s/rollout.js'
import {deployLocal} from '../targets/local.js'

export interface DeployResult {
  model: string
  sha256: string
  namespace: string
  deployment: string
  dryRun: 'client' | 'server' | null
  applied: AppliedObject[]
  rollout: string | null
  revision: string | null
  seconds: number
}

export default class Deploy extends BaseCommand<typeof Deploy> {
  static summary = 'Deploy a model version (local, docker or Kubernetes target) and wait until it serves.'

  static description = `--target local (the default) pulls the model as the loader would and starts mlops serve in the background; --target docker runs the loader container into a volume, then the API container; both wait for /ready. --target k8s: resolves the model ref to a concrete version and sha256, renders the manifests (see mlops render), refuses an incompatible model before touching the cluster (exit 8), applies every object with server-side apply (field manager "mlops"; a conflict with another manager exits 4 unless --force-conflicts), then waits for the rollout with kubectl's rules and, when it cannot finish, exits 9 with a diagnosis from the pods (the loader's termination summary, image pull errors, crash loops, scheduling). Re-running the same deploy changes nothing. The default --timeout grows with the model size.`

  static examples = [
    '<%= config.bin %> <%= command.id %> --model iris@prod',
    '<%= config.bin %> <%= command.id %> --model iris@4 --set replicas=3 --timeout 10m --context gke_prod',
    '<%= config.bin %> <%= command.id %> --dry-run server --set resources.limits.cpu=2',
  ]

  static flags = {
    ...renderFlags,
    target: targetFlag,
    port: Flags.integer({summary: 'local target: port for mlops serve on 127.0.0.1 (default: a free one).', default: 0, min: 0, max: 65_535}),
    context: Flags.string({summary: 'kubeconfig context (default: the current one).', env: 'MLOPS_KUBE_CONTEXT'}),
    'dry-run': Flags.string({summary: 'client: print what would be applied; server: let the API server validate and admit everything, persist nothing.', options: ['client', 'server']}),
    timeout: Flags.string({summary: 'How long to wait for the rollout, e.g. 90s, 5m (default: the Deployment\'s progress deadline plus a minute).'}),
    'force-conflicts': Flags.boolean({summary: 'Take over fields owned by another field manager.', default: false}),
    atomic: Flags.boolean({summary: 'When the rollout fails, roll back to the revision that was live before (still exit 9).', default: false}),
    diff: Flags.boolean({summary: 'Print what would change against the live objects (a server-side dry run) and apply nothing.', default: false}),
  }

  /** The same pattern on this machine: the loader step, then mlops serve in the background. */
  private async deployLocally(started: number): Promise<TargetDeployResult> {
    const {flags, project} = this
    const {store, manifest} = await resolveDeployModel(project, flags, {cluster: false})
    const support = await installedRuntimeSupport()
    requireCompatible(manifest, support, `onnxruntime ${support.runtime}`, 'nothing was started')
    const progress = await this.progress()
    progress.start(`Deploying ${manifest.name}@${manifest.version} locally`)
    try {
      const deployed = await deployLocal(project.dir, store, {name: manifest.name, ref: manifest.version}, {
        port: flags.port, timeoutMs: this.readyTimeoutMs(), onProgress: text => progress.text(text),
      })
      progress.succeed(`Deployed ${deployed.model} locally`)
      this.log(`${deployed.model} ${deployed.unchanged ? 'already serving' : 'serving'} at ${deployed.url} (pid ${deployed.pid}, log ${deployed.log})`)
      return {target: 'local', model: deployed.model, sha256: deployed.sha256, url: deployed.url, pid: deployed.pid, unchanged: deployed.unchanged, seconds: (Date.now() - started) / 1000}
    } finally {
      progress.stop()
    }
  }

  /** The pod shape on the Docker engine: loader container into a volume, then the API container. */
  private async deployToDocker(started: number): Promise<TargetDeployResult> {
    const {flags, project} = this
    const {settings, manifest} = await resolveDeployModel(project, flags, {cluster: false})
    const names = await imageNames(project, {repository: flags.repository, tag: flags.tag})
    const images = {loader: names.ref('loader'), api: names.ref('api')}
    const {connectDocker, imageLabels} = await import('../images/docker.js')
    const docker = await connectDocker()
    for (const image of Object.values(images)) await imageLabels(docker, image)
    const runtime = await runtimeSupportFor(images.api)
    requireCompatible(manifest, runtime.support, runtime.source, 'nothing was started')
    const progress = await this.progress()
    progress.start(`Deploying ${manifest.name}@${manifest.version} to Docker`)
    try {
      const deployed = await deployDocker(docker, project.dir, {
        name: deploymentTarget(project, {}).name, manifest, images, store: settings,
        timeoutMs: this.readyTimeoutMs(), onProgress: text => progress.text(text),
      })
      progress.succeed(`Deployed ${deployed.model} to Docker`)
      this.log(`${deployed.model} serving at ${deployed.url} (container ${deployed.container}, volume ${deployed.volume})`)
      return {target: 'docker', model: deployed.model, sha256: deployed.sha256, url: deployed.url, container: deployed.container, unchanged: false, seconds: (Date.now() - started) / 1000}
    } finally {
      progress.stop()
    }
  }

  private readyTimeoutMs(): number {
    return this.flags.timeout ? parseDuration(this.flags.timeout) : 120_000
  }

  async run(): Promise<DeployResult | TargetDeployResult> {
    const started = Date.now()
    const {flags} = this
    const where = targetOf(this.project, flags.target)
    if (where !== 'k8s') refuseClusterFlags(flags, Deploy.flags, where, ['dry-run', 'diff', 'atomic', 'force-conflicts', 'context', 'values', 'set', 'namespace'])
    if (where === 'local') return this.deployLocally(started)
    if (where === 'docker') return this.deployToDocker(started)
    if (flags.port !== 0) throw new UsageError('--port applies to --target local', {suggestion: 'the cluster\'s port is deploy.port in mlops.yaml (--set port=N)'})
    const rendered = await renderFromFlags(this.project, flags)
    const {manifest, objects} = rendered
    const model = `${manifest.name}@${manifest.version}`
    const runtime = await runtimeSupportFor((rendered.values.images as {api: string}).api)
    requireCompatible(manifest, runtime.support, runtime.source, 'nothing was applied')

    const deployment = objects.find(o => o.kind === 'Deployment')
    if (!deployment) throw new UsageError('the manifests have no Deployment', {suggestion: 'check the templates in manifests/'})
    const target = {name: deployment.metadata.name, namespace: deployment.metadata.namespace ?? 'default'}
    const result: DeployResult = {
      model, sha256: manifest.sha256, namespace: target.namespace, deployment: target.name, dryRun: (flags['dry-run'] as 'client' | 'server' | undefined) ?? null,
      applied: [], rollout: null, revision: null, seconds: 0,
    }
    if (flags['dry-run'] === 'client') {
      if (!this.jsonEnabled()) process.stdout.write(toYaml(rendered.files))
      return {...result, seconds: (Date.now() - started) / 1000}
    }

    const clients = kubeClients({context: flags.context})
    if (flags.diff) {
      const patch = await diffObjects(clients, objects, {force: flags['force-conflicts']})
      this.log(patch || `no changes: the live objects already match ${model}`)
      return {...result, dryRun: 'server', seconds: (Date.now() - started) / 1000}
    }

    const progress = await this.progress()
    progress.start(`Applying ${objects.length} objects for ${model} to ${clients.server}`)
    try {
      result.applied = await applyObjects(clients, objects, {dryRun: flags['dry-run'] === 'server', force: flags['force-conflicts']})
      for (const object of result.applied) this.log(`${object.kind.toLowerCase()}/${object.name} ${object.result}${flags['dry-run'] ? ' (server dry run)' : ''}`)
      if (flags['dry-run'] === 'server') return {...result, seconds: (Date.now() - started) / 1000}

      const progressDeadline = (deployment.spec as {progressDeadlineSeconds?: number}).progressDeadlineSeconds ?? 600
      const live = await waitForRollout(clients, target, {
        timeoutMs: flags.timeout ? parseDuration(flags.timeout) : (progressDeadline + 60) * 1000,
        onProgress: message => progress.text(`Waiting for ${target.namespace}/${target.name}: ${message}`),
      }).catch(async error => {
        if (!flags.atomic || !(error instanceof RolloutError)) throw error
        throw await rollBackAfterFailure(clients, target, error)
      })
      result.rollout = rolloutStatus(live).message
      result.revision = live.metadata?.annotations?.['deployment.kubernetes.io/revision'] ?? null
      progress.succeed(`Deployed ${model}`)
      this.log(`deployment ${target.namespace}/${target.name} rolled out: ${model} (sha256:${manifest.sha256.slice(0, 12)}), ${result.rollout}, revision ${result.revision}`)
      return {...result, seconds: (Date.now() - started) / 1000}
    } finally {
      progress.stop()
    }
  }
}

/** What deploy did on the local or docker target: the server's URL, and its process or container. */
export interface TargetDeployResult {
  target: 'docker' | 'local'
  model: string
  sha256: string
  url: string
  pid?: number
  container?: string
  unchanged: boolean
  seconds: number
}

/** --atomic: put the previous revision back, and say so in the rollout error. */
async function rollBackAfterFailure(clients: ReturnType<typeof kubeClients>, target: {name: string; namespace: string}, failure: RolloutError): Promise<RolloutError> {
  try {
    const restored = await rollbackTo(clients, await readDeployment(clients, target))
    return new RolloutError(`${failure.message}; rolled back to revision ${restored.revision} (${restored.model}@${restored.version})`, {suggestion: failure.suggestion})
  } catch (error) {
    return new RolloutError(`${failure.message}; not rolled back: ${(error as Error).message}`, {suggestion: failure.suggestion})
  }
}

/** 90, 90s, 5m, 1h30m → milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$/.exec(text.trim())
  if (!match || text.trim() === '') throw new UsageError(`invalid --timeout "${text}": use e.g. 90s, 5m or 1h30m`)
  const [, h = '0', m = '0', s = '0'] = match
  const ms = ((Number(h) * 60 + Number(m)) * 60 + Number(s)) * 1000
  if (ms <= 0) throw new UsageError(`invalid --timeout "${text}": it must be more than 0`)
  return ms
}
