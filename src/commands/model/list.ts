import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {storeFlags, storeOverrides} from '../../cli/store-flags.js'
import {DEFAULT_LOCAL_STORE, openStore, resolveStoreSettings} from '../../store/open.js'
import {formatTable} from '../../cli/table.js'
import type {ModelSummary, VersionSummary} from '../../store/model-store.js'
import {validateName} from '../../store/names.js'
import {redact} from '../../util/redact.js'
import {formatBytes} from '../../util/text.js'

export type ListResult =
  {store: string; models: ModelSummary[]} | {store: string; name: string; versions: VersionSummary[]; aliases: Record<string, string>}

export default class ModelList extends BaseCommand<typeof ModelList> {
  static summary = 'List models, or the versions of one model.'

  static description =
    'Without NAME: every model in the store with its number of versions, latest version and aliases. With NAME: its versions with size, creation time, sha256 and aliases.'

  static examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> iris',
    '<%= config.bin %> <%= command.id %> iris --store gs://my-models --json',
  ]

  static args = {
    name: Args.string({description: 'Model name.'}),
  }

  static flags = {...storeFlags}

  /** A problem with one entry, on stderr: the listing of the others goes on. */
  private warnAbout(problem: string): void {
    if (!this.jsonEnabled()) this.logToStderr(`Warning: ${redact(problem)}`)
  }

  async run(): Promise<ListResult> {
    const settings = resolveStoreSettings(this.project, storeOverrides(this.flags), process.cwd())
    const store = await openStore(settings)
    // The default folder before the first push is an empty store; a store named anywhere must exist.
    await store.backend.check({mustExist: settings.uri !== DEFAULT_LOCAL_STORE})
    if (this.args.name === undefined) {
      const models = await store.listModels()
      if (models.length === 0) this.log(`No models in ${store.uri}. Push one with: mlops model push FILE --name NAME`)
      else
        this.log(
          formatTable(
            ['NAME', 'VERSIONS', 'LATEST', 'ALIASES'],
            models.map(m => [m.name, String(m.versions), m.latest ?? '-', formatAliases(m.aliases)]),
          ),
        )
      for (const problem of models.flatMap(m => m.problems ?? [])) this.warnAbout(problem)
      return {store: store.uri, models}
    }

    const name = validateName('model name', this.args.name)
    const listing = await store.listVersions(name)
    this.log(
      formatTable(
        ['VERSION', 'SIZE', 'CREATED', 'SHA256', 'ALIASES'],
        listing.versions.map(v =>
          v.problem
            ? [v.version, '-', '-', 'CORRUPT', v.aliases.join(',') || '-']
            : [v.version, formatBytes(v.size), v.createdAt, v.sha256.slice(0, 12), v.aliases.join(',') || '-'],
        ),
      ),
    )
    for (const version of listing.versions) if (version.problem) this.warnAbout(version.problem)
    return {store: store.uri, ...listing}
  }
}

function formatAliases(aliases: Record<string, string>): string {
  const entries = Object.entries(aliases).sort(([a], [b]) => a.localeCompare(b))
  return entries.length > 0 ? entries.map(([alias, version]) => `${alias}→${version}`).join(',') : '-'
}
