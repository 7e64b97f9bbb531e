import {Flags} from '@oclif/core'

import {clusterFlags, durationFlag, targetFlag} from '../cli/flags.js'
import {TargetCommand} from '../cli/target-command.js'
import {UsageError} from '../errors.js'
import {type DeployResult, TARGETS, TARGET_NAMES} from '../targets/target.js'

export default class Promote extends TargetCommand<typeof Promote> {
  static summary = 'Go on with a canary that deploy --canary --pause left at a step: the next step (gated), or with --full the promotion.'

  static description = [
    'The paused canary carries what its deploy was given (version, --set, values files, images, store), and promote renders',
    'the release again from the project: it must be the one that was canaried (the hash of its pod template), or nothing is',
    "applied. The next step is gated as deploy's are and pauses again; after the last one the version is promoted to the",
    'stable Deployment as one revision and the canary goes. Ctrl-C or a failed gate removes the canary (exit 130, 13).',
  ].join(' ')

  static examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --full --json']

  static flags = {
    ...clusterFlags,
    target: targetFlag,
    full: Flags.boolean({summary: 'Skip the remaining steps: promote the canaried version now.', default: false}),
    timeout: durationFlag({summary: 'How long to wait for each rollout, e.g. 90s, 5m (a bare number is seconds).'}),
  }

  async run(): Promise<DeployResult> {
    const {name, target} = await this.target()
    if (!target.promote) {
      const progressive = TARGET_NAMES.filter(candidate => TARGETS[candidate].revisions)
      throw new UsageError(`promote works on --target ${progressive.join(', ')}, where deploy --canary runs; the ${name} target has none`, {
        suggestion: 'mlops deploy --model NAME@VERSION deploys a version',
      })
    }

    return target.promote({
      namespace: this.flags.namespace,
      context: this.flags.context,
      full: this.flags.full,
      timeoutMs: this.flags.timeout,
    })
  }
}
