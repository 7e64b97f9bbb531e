import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {confirmOrRefuse} from '../cli/confirm.js'
import {deploymentTarget, refuseClusterFlags, targetFlag, targetFlags, targetOf} from '../cli/render-flags.js'
import {kubeClients, kubeError} from '../targets/k8s/client.js'
import {deleteDocker} from '../targets/docker.js'
import {deleteLocal} from '../targets/local.js'

const KINDS = [
  {apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler'},
  {apiVersion: 'policy/v1', kind: 'PodDisruptionBudget'},
  {apiVersion: 'v1', kind: 'Service'},
  {apiVersion: 'apps/v1', kind: 'Deployment'},
]

export default class Delete extends BaseCommand<typeof Delete> {
  static summary = 'Delete the deployment and the objects deploy created with it (the namespace stays).'

  static examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --namespace staging --yes']

  static flags = {...targetFlags, target: targetFlag, yes: Flags.boolean({char: 'y', summary: 'Do not ask for confirmation.', default: false})}

  async run(): Promise<{namespace: string; deployment: string; deleted: string[]} | {target: 'docker' | 'local'; model: string; pid?: number; container?: string}> {
    const where = targetOf(this.project, this.flags.target)
    if (where !== 'k8s') refuseClusterFlags(this.flags, Delete.flags, where)
    if (where === 'docker') {
      const {connectDocker} = await import('../images/docker.js')
      const removed = await deleteDocker(await connectDocker(), this.project.dir)
      this.log(`removed container ${removed.container} (${removed.model}) and volume ${removed.volume}`)
      return {target: 'docker', model: removed.model, container: removed.container}
    }

    if (where === 'local') {
      const stopped = await deleteLocal(this.project.dir)
      this.log(`stopped mlops serve (pid ${stopped.pid}, ${stopped.model}) and removed ${stopped.workdir}`)
      return {target: 'local', model: stopped.model, pid: stopped.pid}
    }

    const target = deploymentTarget(this.project, this.flags)
    const clients = kubeClients({context: this.flags.context})
    const deleted: string[] = []
    if (!await confirmOrRefuse(`Delete deployment ${target.namespace}/${target.name} and its Service, HPA and PDB from ${clients.server}?`, {yes: this.flags.yes, json: this.jsonEnabled()})) {
      this.log('Nothing deleted.')
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

    this.log(deleted.length > 0 ? `deleted ${deleted.join(', ')} in ${target.namespace}` : `nothing of ${target.name} was left in ${target.namespace}`)
    return {...target, deployment: target.name, deleted}
  }
}
