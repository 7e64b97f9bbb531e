import {Config, Flags, Parser} from '@oclif/core'
import {expect} from 'chai'
import {join} from 'node:path'

import {restoreEnv} from '../helpers/env.js'
import {shellWords} from '../helpers/shell-words.js'

const root = join(import.meta.dirname, '..', '..')

/**
 * Every example `mlops COMMAND --help` shows parses with that command's own flags and
 * arguments (names, short forms, option values, required flags, exclusive pairs), with
 * the `VAR=value` prefixes it shows set as the environment. A renamed flag fails here.
 */
describe('every command example in --help parses', () => {
  it('examples of every command', async () => {
    const config = await Config.load(root)
    let checked = 0
    for (const command of config.commands) {
      const loaded = await command.load()
      for (const example of command.examples ?? []) {
        const text = (typeof example === 'string' ? example : example.command)
          .replaceAll('<%= config.bin %>', 'mlops')
          .replaceAll('<%= command.id %>', command.id.replaceAll(':', ' '))
        // `echo ... | mlops ...`: the mlops part; `$TOKEN` stands for a value.
        const words = shellWords(text.slice(text.lastIndexOf('|') + 1).replaceAll('$TOKEN', 'token'))
        const at = words.indexOf('mlops')
        const env = words.slice(0, at).map(word => word.split('=') as [string, string])
        const ids = command.id.split(':')
        expect(words.slice(at + 1, at + 1 + ids.length), text).to.deep.equal(ids)
        const saved = env.map(([key]) => [key, process.env[key]] as const)
        for (const [key, value] of env) process.env[key] = value
        try {
          await Parser.parse(words.slice(at + 1 + ids.length), {
            // As oclif's Command does: the base command's flags, the command's, and --json where enabled.
            flags: {...loaded.baseFlags, ...loaded.flags, ...(loaded.enableJsonFlag ? {json: Flags.boolean()} : {})},
            args: loaded.args,
            strict: loaded.strict ?? true,
          }).catch(error => {
            throw new Error(`${text}: ${error.message}`)
          })
        } finally {
          for (const [key, value] of saved) restoreEnv(key, value)
        }

        checked++
      }
    }

    expect(checked).to.be.greaterThan(40)
  })
})
