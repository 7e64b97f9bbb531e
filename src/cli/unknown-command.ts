import type {Interfaces} from '@oclif/core'

import {UsageError} from '../errors.js'
import {closestMatch} from '../util/text.js'

/**
 * The error for words that name no command (the command_not_found hook, and
 * `mlops help WORDS`): it names only the words that do not form a command,
 * with the closest command as a suggestion, instead of oclif's own message
 * that echoes every argument.
 */
export function unknownCommand(config: Interfaces.Config, id: string): UsageError {
  const words = id.split(':')
  const topics = new Set([...config.commandIDs, ...config.topics.map(t => t.name)])
  let known = 0
  while (known < words.length && topics.has(words.slice(0, known + 1).join(':'))) known++
  const asked = words.slice(0, known + 1).join(' ')
  // Compared with commands cut to as many words as were asked: "modle" meets "model".
  const commands = [
    ...new Set(
      config.commandIDs.map(command =>
        command
          .split(':')
          .slice(0, known + 1)
          .join(' '),
      ),
    ),
  ]
  const close = closestMatch(asked, commands)
  return new UsageError(`mlops has no command "${asked}"`, {
    suggestion: `${close ? `did you mean "mlops ${close}"? ` : ''}mlops --help lists the commands`,
  })
}

/** Whether WORDS (a command id, colon-separated) is a command or a topic. */
export function isCommandOrTopic(config: Interfaces.Config, id: string): boolean {
  return config.findCommand(id) !== undefined || config.findTopic(id) !== undefined
}
