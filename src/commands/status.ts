import {clusterFlags, targetFlag} from '../cli/flags.js'
import {TargetCommand} from '../cli/target-command.js'

import type {StatusResult} from '../targets/target.js'

export default class Status extends TargetCommand<typeof Status> {
  static summary = 'Show what is live: model version and sha256, images, replicas, conditions, revision history.'

  static examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --namespace staging --json']

  static flags = {...clusterFlags, target: targetFlag}

  async run(): Promise<StatusResult> {
    const {target} = await this.target()
    return target.status({namespace: this.flags.namespace, context: this.flags.context})
  }
}
