import type {Hook} from '@oclif/core'

import {unknownCommand} from '../cli/unknown-command.js'
import {ExitCode} from '../errors.js'
import {redact} from '../util/redact.js'

/** An unknown command gets the same one-line error as every other usage error (exit 2). */
const hook: Hook<'command_not_found'> = async function (options) {
  const error = unknownCommand(options.config, options.id)
  process.stderr.write(`${redact(`Error: ${error.message}`)}\nHint: ${error.suggestion}\n`)
  this.exit(ExitCode.USAGE)
}

export default hook
