import type {Hook} from '@oclif/core'

import {ExitCode} from '../errors.js'
import {closestMatch} from '../util/text.js'
import {redact} from '../util/redact.js'

/**
 * An unknown command gets the same one-line error as every other usage error
 * (exit 2), naming only the words that do not form a command (redacted), with
 * the closest command as a suggestion, instead of oclif's own message that
 * echoes every argument.
 */
const hook: Hook<'command_not_found'> = async function (options) {
  const words = options.id.split(':')
  const topics = new Set([...options.config.commandIDs, ...options.config.topics.map(t => t.name)])
  let known = 0
  while (known < words.length && topics.has(words.slice(0, known + 1).join(':'))) known++
  const asked = words.slice(0, known + 1).join(' ')
  // Compared with commands cut to as many words as were asked: "modle" meets "model".
  const commands = [
    ...new Set(
      options.config.commandIDs.map(id =>
        id
          .split(':')
          .slice(0, known + 1)
          .join(' '),
      ),
    ),
  ]
  const close = closestMatch(asked, commands)
  process.stderr.write(
    `${redact(`Error: mlops has no command "${asked}"`)}\nHint: ${close ? `did you mean "mlops ${close}"? ` : ''}mlops --help lists the commands\n`,
  )
  this.exit(ExitCode.USAGE)
}

export default hook
