import {Args} from '@oclif/core'

import {BaseCommand} from '../../../cli/base-command.js'
import {storeFlags, storeFor} from '../../../cli/store-flags.js'
import type {AliasResult} from '../../../store/model-store.js'
import {validateName} from '../../../store/names.js'

export default class ModelAliasRm extends BaseCommand<typeof ModelAliasRm> {
  static summary = 'Remove an alias (the version it pointed at stays).'

  static examples = ['<%= config.bin %> <%= command.id %> iris staging']

  static args = {
    name: Args.string({description: 'Model name.', required: true}),
    alias: Args.string({description: 'Alias to remove.', required: true}),
  }

  static flags = {...storeFlags}

  async run(): Promise<AliasResult> {
    const name = validateName('model name', this.args.name)
    const store = await storeFor(this.project, this.flags)
    const result = await store.removeAlias(name, this.args.alias)
    this.log(`removed alias ${result.alias} of ${name} (was → ${result.version})`)
    return result
  }
}
