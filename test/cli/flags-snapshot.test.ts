import {expect} from 'chai'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

const root = join(import.meta.dirname, '..', '..')
const snapshotPath = join(root, 'test', 'snapshots', 'commands.json')

interface ManifestFlag {
  type: string
  char?: string
  required?: boolean
  multiple?: boolean
  env?: string
  default?: unknown
  options?: string[]
}

/**
 * Every command's flags and arguments, as users and scripts depend on them:
 * a renamed flag, a changed default or a dropped environment variable fails
 * here until the snapshot is updated on purpose (UPDATE_SNAPSHOTS=1 npm test).
 */
describe('command surface snapshot', () => {
  it('flags, arguments, env variables and defaults of every command match test/snapshots/commands.json', () => {
    const manifest = JSON.parse(readFileSync(join(root, 'oclif.manifest.json'), 'utf8')) as {
      commands: Record<
        string,
        {flags: Record<string, ManifestFlag>; args: Record<string, {required?: boolean; options?: string[]; default?: unknown}>}
      >
    }
    const surface = Object.fromEntries(
      Object.entries(manifest.commands)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([id, command]) => [
          id,
          {
            args: Object.fromEntries(
              Object.entries(command.args).map(([name, arg]) => [
                name,
                {required: Boolean(arg.required), options: arg.options ?? null, default: arg.default ?? null},
              ]),
            ),
            flags: Object.fromEntries(
              Object.entries(command.flags)
                .sort(([a], [b]) => a.localeCompare(b))
                .map(([name, flag]) => [
                  name,
                  {
                    type: flag.type,
                    char: flag.char ?? null,
                    required: Boolean(flag.required),
                    multiple: Boolean(flag.multiple),
                    env: flag.env ?? null,
                    default: flag.default ?? null,
                    options: flag.options ?? null,
                  },
                ]),
            ),
          },
        ]),
    )
    // Written only on request: a missing snapshot fails (it would otherwise compare the surface with itself).
    if (process.env.UPDATE_SNAPSHOTS) writeFileSync(snapshotPath, `${JSON.stringify(surface, null, 2)}\n`)
    expect(existsSync(snapshotPath), `${snapshotPath} is missing: write it with UPDATE_SNAPSHOTS=1 npm test`).to.equal(true)
    expect(surface).to.deep.equal(JSON.parse(readFileSync(snapshotPath, 'utf8')))
  })
})
