import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {confirmOrRefuse} from '../../cli/confirm.js'
import {storeFlags, storeFor} from '../../cli/store-flags.js'
import {parseModelRef, validateName} from '../../store/names.js'

export interface RemoveResult {
  name: string
  version: string
  removed: boolean
  deleted: string[]
}

export default class ModelRm extends BaseCommand<typeof ModelRm> {
  static summary = 'Delete a model version.'

  static description = [
    'Refuses (exit code 4) while an alias points at the version. Asks for confirmation unless --yes; without a terminal it',
    'refuses instead of waiting. Also removes what an interrupted push left behind (a version folder without a manifest).',
  ].join(' ')

  static examples = ['<%= config.bin %> <%= command.id %> iris@1', '<%= config.bin %> <%= command.id %> iris@1 --yes --json']

  static args = {
    ref: Args.string({description: 'NAME@VERSION (an explicit version, not an alias).', required: true}),
  }

  static flags = {
    yes: Flags.boolean({char: 'y', summary: 'Do not ask for confirmation.', default: false}),
    ...storeFlags,
  }

  async run(): Promise<RemoveResult> {
    const {name, ref: version} = parseModelRef(this.args.ref)
    validateName('version', version)
    const store = await storeFor(this.project, this.flags)
    const result = await store.remove(name, version, () =>
      confirmOrRefuse(`Delete ${name}@${version} from ${store.uri}?`, {yes: this.flags.yes, json: this.jsonEnabled()}),
    )
    if (!result) {
      this.log('Nothing deleted.')
      return {name, version, removed: false, deleted: []}
    }

    this.log(`deleted ${name}@${version}${result.committed ? '' : ' (leftovers of an interrupted push)'} from ${store.uri}`)
    return {name, version, removed: true, deleted: result.deleted}
  }
}
