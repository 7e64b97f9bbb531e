import {BaseCommand} from '../cli/base-command.js'
import {deploymentTarget, refuseClusterFlags, targetFlag, targetFlags, targetOf} from '../cli/render-flags.js'
import {formatTable} from '../cli/table.js'
import {kubeClients} from '../targets/k8s/client.js'
import {type Revision, readDeployment, revisions} from '../targets/k8s/history.js'
import {rolloutStatus} from '../targets/k8s/rollout.js'
import {type ServedModel, servedModels} from '../targets/k8s/served.js'
import {dockerStatus} from '../targets/docker.js'
import {localStatus} from '../targets/local.js'

export interface StatusResult {
  namespace: string
  deployment: string
  model: {name: string | null; version: string | null; sha256: string | null}
  images: Record<string, string>
  replicas: {desired: number; updated: number; ready: number; available: number}
  rollout: string
  conditions: Array<{type: string; status: string; reason?: string; message?: string}>
  revisions: Revision[]
  /** What each running API container of the current revision reports at /metadata. */
  serving: Array<ServedModel & {matches: boolean}>
}

export type LocalStatus = {target: 'local'} & Awaited<ReturnType<typeof localStatus>>
export type DockerStatus = {target: 'docker'} & Awaited<ReturnType<typeof dockerStatus>>

export default class Status extends BaseCommand<typeof Status> {
  static summary = 'Show what is live: model version and sha256, images, replicas, conditions, revision history.'

  static examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --namespace staging --json']

  static flags = {...targetFlags, target: targetFlag}

  async run(): Promise<StatusResult | LocalStatus | DockerStatus> {
    const where = targetOf(this.project, this.flags.target)
    if (where !== 'k8s') refuseClusterFlags(this.flags, Status.flags, where)
    if (where === 'docker') {
      const {connectDocker} = await import('../images/docker.js')
      const running = await dockerStatus(await connectDocker(), this.project.dir)
      this.log(`docker: ${running.model} (sha256:${running.sha256.slice(0, 12)}) at ${running.url}, container ${running.container}, ${running.running ? (running.ready ? 'ready' : 'running, not ready') : 'not running'}`)
      return {target: 'docker', ...running}
    }

    if (where === 'local') {
      const local = await localStatus(this.project.dir)
      this.log(`local: ${local.model} (sha256:${local.sha256.slice(0, 12)}) at ${local.url}, pid ${local.pid}, ${local.running ? (local.ready ? 'ready' : 'running, not ready') : 'not running'}\n  log ${local.log}`)
      return {target: 'local', ...local}
    }

    const target = deploymentTarget(this.project, this.flags)
    const clients = kubeClients({context: this.flags.context})
    const deployment = await readDeployment(clients, target)
    const annotations = deployment.spec?.template?.metadata?.annotations ?? {}
    const pod = deployment.spec?.template?.spec
    const [history, served] = await Promise.all([revisions(clients, deployment), servedModels(clients, deployment)])
    const wanted = annotations['mlops.io/model-sha256'] ?? null
    const status = deployment.status ?? {}
    const result: StatusResult = {
      ...{namespace: target.namespace, deployment: target.name},
      model: {name: annotations['mlops.io/model'] ?? null, version: annotations['mlops.io/model-version'] ?? null, sha256: annotations['mlops.io/model-sha256'] ?? null},
      images: Object.fromEntries([...(pod?.initContainers ?? []), ...(pod?.containers ?? [])].map(c => [c.name, c.image ?? ''])),
      replicas: {desired: deployment.spec?.replicas ?? 0, updated: status.updatedReplicas ?? 0, ready: status.readyReplicas ?? 0, available: status.availableReplicas ?? 0},
      rollout: rolloutStatus(deployment).message,
      conditions: (status.conditions ?? []).map(c => ({type: c.type, status: c.status, reason: c.reason, message: c.message})),
      revisions: history.map(({replicaSet: _, ...revision}) => revision),
      serving: served.map(pod => ({...pod, matches: pod.sha256 !== null && pod.sha256 === wanted})),
    }
    this.log([
      `deployment ${target.namespace}/${target.name}: ${result.model.name}@${result.model.version} (sha256:${result.model.sha256?.slice(0, 12) ?? '?'})`,
      ...Object.entries(result.images).map(([container, image]) => `  ${container.padEnd(12)} ${image}`),
      `  replicas     ${result.replicas.available}/${result.replicas.desired} available, ${result.replicas.updated} updated, ${result.replicas.ready} ready (${result.rollout})`,
      ...result.conditions.map(c => `  ${c.type.padEnd(12)} ${c.status} ${c.reason ?? ''}`.trimEnd()),
      ...result.serving.map(pod => `  serving      ${pod.pod}: ${pod.error
        ? `unknown (${pod.error})`
        : `${pod.name ?? '?'}@${pod.version ?? '?'} sha256:${pod.sha256!.slice(0, 12)}${pod.matches ? '' : ' (NOT the deployed model)'}${pod.ready ? '' : ', not ready'}`}`),
      '',
      formatTable(['REVISION', 'MODEL', 'SHA256', 'REPLICAS', 'CREATED'], result.revisions.map(r => [
        `${r.revision}${r.current ? ' *' : ''}`, `${r.model}@${r.version}`, r.sha256?.slice(0, 12) ?? '-', String(r.replicas), r.created ?? '-',
      ])),
    ].join('\n'))
    return result
  }
}
