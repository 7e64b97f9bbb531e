import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {deploymentTarget, targetFlag, targetFlags, targetOf} from '../cli/render-flags.js'
import {UsageError} from '../errors.js'
import {kubeClients} from '../targets/k8s/client.js'
import {readDeployment, rollbackTo} from '../targets/k8s/history.js'
import {waitForRollout} from '../targets/k8s/rollout.js'

export default class Rollback extends BaseCommand<typeof Rollback> {
  static summary = 'Go back to an earlier revision (and its model), then wait for the rollout.'

  static description = 'Without --to-revision, the revision before the current one. The earlier pod template, with its model annotations, is applied with server-side apply (field manager mlops), which makes a new revision, as kubectl rollout undo does.'

  static examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --to-revision 3 --json']

  static flags = {
    ...targetFlags,
    target: targetFlag,
    'to-revision': Flags.integer({summary: 'Revision to go back to (see mlops status).', min: 1}),
    timeout: Flags.integer({summary: 'Seconds to wait for the rollout.', default: 300, min: 1}),
  }

  async run(): Promise<{namespace: string; deployment: string; revision: number; model: string}> {
    const where = targetOf(this.project, this.flags.target)
    if (where !== 'k8s') {
      throw new UsageError(`rollback works on --target k8s, which keeps revisions; the ${where} target does not`, {suggestion: 'deploy the earlier version instead: mlops deploy --model NAME@VERSION'})
    }

    const target = deploymentTarget(this.project, this.flags)
    const clients = kubeClients({context: this.flags.context})
    const restored = await rollbackTo(clients, await readDeployment(clients, target), this.flags['to-revision'])
    await waitForRollout(clients, target, {timeoutMs: this.flags.timeout * 1000})
    const model = `${restored.model}@${restored.version}`
    this.log(`deployment ${target.namespace}/${target.name} rolled back to revision ${restored.revision}: ${model}`)
    return {...target, deployment: target.name, revision: restored.revision, model}
  }
}
