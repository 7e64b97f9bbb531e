import {clusterFlags, targetFlag} from '../cli/flags.js'
import {TargetCommand} from '../cli/target-command.js'
import {UsageError} from '../errors.js'
import {type AbortResult, TARGETS, TARGET_NAMES} from '../targets/target.js'

export default class Abort extends TargetCommand<typeof Abort> {
  static summary = 'Remove a canary or shadow under way (one a deploy left when it was killed); the stable serves on unchanged.'

  static description = [
    'deploy --canary and --shadow remove their own objects when a gate fails or on Ctrl-C; a deploy killed outright cannot.',
    'abort removes them: the shadow switched off first (the stable stops mirroring), then its candidate; the canary',
    'Deployment and Service. Safe to repeat: with nothing under way it changes nothing. The next deploy does the same.',
  ].join(' ')

  static examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --namespace staging --json']

  static flags = {
    ...clusterFlags,
    target: targetFlag,
  }

  async run(): Promise<AbortResult> {
    const {name, target} = await this.target()
    if (!target.abort) {
      const progressive = TARGET_NAMES.filter(candidate => TARGETS[candidate].revisions)
      throw new UsageError(`abort works on --target ${progressive.join(', ')}, where deploy --canary runs; the ${name} target has none`, {
        suggestion: 'mlops delete removes a deployment',
      })
    }

    return target.abort({namespace: this.flags.namespace, context: this.flags.context})
  }
}
