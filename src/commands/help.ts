import {Args, Flags, loadHelpClass} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {isCommandOrTopic, unknownCommand} from '../cli/unknown-command.js'

/**
 * `mlops help [COMMAND]`: what @oclif/plugin-help's command does, as a
 * command of our own so that the build bundles it with the rest (no plugin
 * to find in node_modules at start-up), and an unknown command gets our
 * usage error.
 */
export default class Help extends BaseCommand<typeof Help> {
  static enableJsonFlag = false
  static summary = 'Show help for mlops or one of its commands.'
  static examples = ['<%= config.bin %> help', '<%= config.bin %> help model push']
  static strict = false
  static args = {
    command: Args.string({description: 'The command (or topic) to show help for.', required: false}),
  }

  static flags = {
    'nested-commands': Flags.boolean({char: 'n', summary: 'Include all nested commands in the output.'}),
  }

  public async run(): Promise<void> {
    const words = this.argv.filter(word => !word.startsWith('-'))
    if (words.length > 0 && !isCommandOrTopic(this.config, words.join(':'))) throw unknownCommand(this.config, words.join(':'))
    const HelpClass = await loadHelpClass(this.config)
    await new HelpClass(this.config, {all: this.flags['nested-commands']}).showHelp(this.argv)
  }
}
