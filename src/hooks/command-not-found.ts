import type {Hook} from '@oclif/core'

import {reportFailure} from '../cli/failure.js'
import {unknownCommand} from '../cli/unknown-command.js'
import {ExitCode} from '../errors.js'

/** An unknown command gets the same one-line error as every other usage error (exit 2). */
const hook: Hook<'command_not_found'> = async function (options) {
  const error = unknownCommand(options.config, options.id)
  const json = options.id === '--json' || (options.argv ?? []).includes('--json')
  reportFailure({code: error.code, exitCode: error.exitCode, message: error.message, suggestion: error.suggestion}, {json})
  this.exit(ExitCode.USAGE)
}

export default hook
