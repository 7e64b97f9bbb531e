/**
 * Where a model is deployed: one interface for every target, and the
 * registry of targets. deploy, status, delete, rollback and predict parse
 * their flags and dispatch through it; a new target is one new module and
 * one entry below.
 */
import type {Progress} from '../cli/progress.js'
import type {MlopsYaml, ProjectConfig} from '../config/load.js'
import type {DeliveryRequest} from '../pod/contract.js'
import type {StoreOverrides} from '../store/open.js'
import type {DockerDeleteResult, DockerDeployResult, DockerStatusResult} from './docker.js'
import type {CanaryPlan} from './canary-plan.js'
import type {KubernetesDeployResult} from './k8s/deploy.js'
import type {KubernetesStatusResult} from './k8s/status.js'
import type {KubernetesAbortResult, KubernetesDeleteResult, KubernetesRollbackResult} from './k8s/target.js'
import type {LocalDeleteResult, LocalDeployResult, LocalStatusResult} from './local.js'

/** The targets mlops.yaml's deploy.target names (the schema is their home; TARGETS below has one entry for each). */
export type TargetName = NonNullable<NonNullable<MlopsYaml['deploy']>['target']>

/** How a target talks to the person or the script running the command. */
export interface TargetIO {
  /** A line of human output on stdout (not under --json). */
  log(message: string): void
  /** A line on stderr (what is happening, never the result). */
  note(message: string): void
  progress(): Promise<Progress>
  /** Whether --json is on: then nothing but the result goes to stdout. */
  json: boolean
}

export interface TargetContext {
  project: ProjectConfig
  io: TargetIO
}

/** Where a live deployment is, for the targets that need more than the project (a cluster). */
export interface Locator {
  namespace?: string
  context?: string
}

/** What deploy asks of a target. Fields a target does not take are refused by the command (see TargetInfo.flags). */
export interface DeployRequest extends Locator {
  /** NAME@REF (default: model.name in mlops.yaml, at latest). */
  model?: string
  store: StoreOverrides
  image: {repository?: string; tag?: string}
  /** How long to wait until it serves (default: the target's). */
  timeoutMs?: number
  /** local: the port for mlops serve (0: a free one). */
  port: number
  /** k8s: values files and --set assignments. */
  values: string[]
  set: string[]
  /** k8s: how pods get the model (init-container, image-volume, auto). */
  delivery?: DeliveryRequest
  dryRun?: 'client' | 'server'
  diff: boolean
  /** k8s: pull the images on every node the pods may go to before the rollout (mlops model warm). */
  prewarm?: boolean
  /** k8s: roll out in canary steps, gated, before promoting (deploy --canary). */
  canary?: CanaryPlan
  atomic: boolean
  forceConflicts: boolean
  /** k8s, from mlops promote: go on with the paused canary whose pod template has this hash (nothing else is promoted). */
  resume?: {template: string}
}

/** The results of each target's operations: their --json output, one shape per target, told apart by `target`. */
export interface TargetResults {
  deploy: {target: TargetName; model: string; sha256: string; seconds: number}
  status: {target: TargetName}
  delete: {target: TargetName}
}

export type DeployResult = DockerDeployResult | KubernetesDeployResult | LocalDeployResult
export type StatusResult = DockerStatusResult | KubernetesStatusResult | LocalStatusResult
export type DeleteResult = DockerDeleteResult | KubernetesDeleteResult | LocalDeleteResult
export type RollbackResult = KubernetesRollbackResult
export type AbortResult = KubernetesAbortResult

/** Where predict sends requests; close() tears down whatever was opened to reach it. */
export interface Endpoint {
  url: string
  /** The pod the requests reach, when the target picks one. */
  pod?: string
  /** What the way in (a tunnel) last reported, when it failed: better than the client's own error. */
  readonly lastError?: Error
  close(): Promise<void>
}

export interface Target<R extends TargetResults = TargetResults> {
  deploy(request: DeployRequest): Promise<R['deploy']>
  status(where: Locator): Promise<R['status']>
  delete(where: Locator & {yes: boolean}): Promise<R['delete']>
  endpoint(where: Locator & {connections: number}): Promise<Endpoint>
  /** Only targets that keep revisions. */
  rollback?(where: Locator & {toRevision?: number; timeoutMs: number}): Promise<RollbackResult>
  /** Only targets with progressive delivery (deploy --canary, --shadow): removes what is under way. */
  abort?(where: Locator): Promise<AbortResult>
  /** Only targets with progressive delivery: goes on with a paused canary (all the remaining steps with `full`, straight to the promotion). */
  promote?(where: Locator & {full: boolean; timeoutMs?: number}): Promise<DeployResult>
}

/** Any target, as the commands hold one: results are the union of the targets'. */
export type AnyTarget = Target<{deploy: DeployResult; status: StatusResult; delete: DeleteResult}>

export interface TargetInfo {
  summary: string
  /** The target-specific flags it takes; the commands refuse the others' (a cluster flag on local). */
  flags: readonly string[]
  /** Whether it keeps revisions to roll back to (then its Target has rollback). */
  revisions?: boolean
  /** A hint for a flag of another target given here. */
  hints?: Record<string, string>
  load(context: TargetContext): Promise<AnyTarget>
}

export const TARGETS: Record<TargetName, TargetInfo> = {
  local: {
    summary: 'a background mlops serve on this machine',
    flags: ['port'],
    load: async context => (await import('./local.js')).localTarget(context),
  },
  docker: {
    summary: 'loader and API containers',
    flags: [],
    load: async context => (await import('./docker.js')).dockerTarget(context),
  },
  k8s: {
    summary: 'a Kubernetes cluster',
    flags: [
      'dry-run',
      'diff',
      'atomic',
      'force-conflicts',
      'context',
      'values',
      'set',
      'namespace',
      'delivery',
      'prewarm',
      'canary',
      'steps',
      'shadow',
      'shadow-sample',
      'pause',
    ],
    revisions: true,
    hints: {port: "the cluster's port is deploy.port in mlops.yaml (--set port=N)"},
    load: async context => (await import('./k8s/target.js')).kubernetesTarget(context),
  },
}

export const TARGET_NAMES = Object.keys(TARGETS) as TargetName[]

/** The target from --target, deploy.target in mlops.yaml, else local (the zero-setup default). */
export function targetOf(project: ProjectConfig, flag: string | undefined): TargetName {
  return (flag ?? project.values.deploy?.target ?? 'local') as TargetName
}

export async function openTarget(name: TargetName, context: TargetContext): Promise<AnyTarget> {
  return TARGETS[name].load(context)
}

/** Which target takes a target-specific flag. */
export function ownerOf(flag: string): TargetName | undefined {
  return TARGET_NAMES.find(name => TARGETS[name].flags.includes(flag))
}

/** How a process or container the local and docker targets started is doing, in words. */
export function liveness(deployment: {running: boolean; ready: boolean}): string {
  return deployment.running ? (deployment.ready ? 'ready' : 'running, not ready') : 'not running'
}
