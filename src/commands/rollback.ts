import {Flags} from '@oclif/core'

import {clusterFlags, durationFlag, targetFlag} from '../cli/flags.js'
import {TargetCommand} from '../cli/target-command.js'
import {UsageError} from '../errors.js'
import {type RollbackResult, TARGETS, TARGET_NAMES} from '../targets/target.js'

export default class Rollback extends TargetCommand<typeof Rollback> {
  static summary = 'Go back to an earlier revision (and its model), then wait for the rollout.'

  static description = [
    'Without --to-revision, the revision before the current one. The earlier pod template, with its model annotations, is',
    'applied with server-side apply (field manager mlops), which makes a new revision, as kubectl rollout undo does.',
  ].join(' ')

  static examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --to-revision 3 --timeout 10m --json']

  static flags = {
    ...clusterFlags,
    target: targetFlag,
    'to-revision': Flags.integer({summary: 'Revision to go back to (see mlops status).', min: 1}),
    timeout: durationFlag({
      summary: 'How long to wait for the rollout, e.g. 90s, 5m (a bare number is seconds).',
      default: 300_000,
      defaultHelp: async () => '5m',
    }),
  }

  async run(): Promise<RollbackResult> {
    const {name, target} = await this.target()
    if (!target.rollback) {
      const keeping = TARGET_NAMES.filter(candidate => TARGETS[candidate].revisions)
      throw new UsageError(`rollback works on --target ${keeping.join(', ')}, which keeps revisions; the ${name} target does not`, {
        suggestion: 'deploy the earlier version instead: mlops deploy --model NAME@VERSION',
      })
    }

    return target.rollback({
      namespace: this.flags.namespace,
      context: this.flags.context,
      toRevision: this.flags['to-revision'],
      timeoutMs: this.flags.timeout,
    })
  }
}
