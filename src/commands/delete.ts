import {Flags} from '@oclif/core'

import {clusterFlags, targetFlag} from '../cli/flags.js'
import {TargetCommand} from '../cli/target-command.js'
import type {DeleteResult} from '../targets/target.js'

export default class Delete extends TargetCommand<typeof Delete> {
  static summary = 'Delete the deployment and the objects deploy created with it (the namespace stays).'

  static examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --namespace staging --yes']

  static flags = {
    ...clusterFlags,
    target: targetFlag,
    yes: Flags.boolean({char: 'y', summary: 'Do not ask for confirmation.', default: false}),
  }

  async run(): Promise<DeleteResult> {
    const {target} = await this.target()
    return target.delete({namespace: this.flags.namespace, context: this.flags.context, yes: this.flags.yes})
  }
}
