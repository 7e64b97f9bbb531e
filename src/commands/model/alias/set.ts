import {Args} from '@oclif/core'

import {BaseCommand} from '../../../cli/base-command.js'
import {storeFlags, storeFor} from '../../../cli/store-flags.js'
import type {AliasResult} from '../../../store/model-store.js'
import {parseModelRef, validateName} from '../../../store/names.js'

export default class ModelAliasSet extends BaseCommand<typeof ModelAliasSet> {
  static summary = 'Point an alias at a model version.'

  static description = [
    'The update is atomic (a generation precondition on the alias object), so concurrent updates never interleave. REF may',
    'itself be an alias or "latest"; the alias records the concrete version it resolves to now.',
  ].join(' ')

  static examples = ['<%= config.bin %> <%= command.id %> iris@3 prod', '<%= config.bin %> <%= command.id %> iris@latest staging']

  static args = {
    ref: Args.string({description: 'NAME@REF to point at.', required: true}),
    alias: Args.string({description: 'Alias name, e.g. prod.', required: true}),
  }

  static flags = {...storeFlags}

  async run(): Promise<AliasResult> {
    const ref = parseModelRef(this.args.ref)
    const alias = validateName('alias', this.args.alias)
    const store = await storeFor(this.project, this.flags)
    const result = await store.setAlias(ref, alias)
    const was = result.previous === undefined ? '' : result.previous === result.version ? ' (unchanged)' : ` (was ${result.previous})`
    this.log(`${result.name} ${result.alias} → ${result.version}${was}`)
    return result
  }
}
