import {Ajv, type ValidateFunction} from 'ajv'
import {readFileSync} from 'node:fs'

import type {Run} from './cli.js'

/**
 * Every --json output a test sees is held to the documented shape (schemas/results.schema.json,
 * generated from src/cli/json-results.ts): a command that succeeded prints its command's result,
 * one that failed prints the failure object. A field the types do not state, a missing one or a
 * wrong type fails the test that ran the command, whatever it asserts itself.
 */
const schema = JSON.parse(readFileSync(new URL('../../schemas/results.schema.json', import.meta.url), 'utf8'))
const ajv = new Ajv({allErrors: true, strict: false})
const validators = new Map<string, ValidateFunction>()
const COMMAND_IDS = Object.keys(schema.properties.commands.properties as Record<string, unknown>)

function validator(key: string, node: object): ValidateFunction {
  let validate = validators.get(key)
  if (!validate) {
    validate = ajv.compile(node)
    validators.set(key, validate)
  }

  return validate
}

/** The command id the arguments start with (the longest one: model alias set before model). */
export function commandIdOf(args: string[]): string | undefined {
  const words: string[] = []
  for (const arg of args) {
    if (arg.startsWith('-')) break
    words.push(arg)
  }

  for (let n = words.length; n > 0; n--) {
    const id = words.slice(0, n).join(' ')
    if (COMMAND_IDS.includes(id)) return id
  }

  return undefined
}

/** Throws when a finished --json run printed something other than its documented shape. */
export function checkJsonOutput(args: string[], run: Run): void {
  if (!args.includes('--json') || args.includes('--help') || run.code === null) return
  const id = commandIdOf(args)
  // Killed by a signal the test sent (the exit code then says so): what it printed may be cut short.
  if (run.code === 137 || run.code === 143) return
  if (run.code !== 0 && run.stdout.trim() === '') return
  const which = run.code === 0 ? id : 'failure'
  if (which === undefined) return
  let output: unknown
  try {
    output = JSON.parse(run.stdout)
  } catch {
    throw new Error(
      `mlops ${args.join(' ')} --json printed something that is not one JSON document (exit ${run.code}):\n${run.stdout.slice(0, 500)}`,
    )
  }

  const node = which === 'failure' ? schema.properties.failure : schema.properties.commands.properties[which]
  const validate = validator(which, node)
  if (!validate(output)) {
    const shape = which === 'failure' ? 'the failure shape' : `the result of ${which}`
    const errors = ajv.errorsText(validate.errors, {separator: '; '})
    throw new Error(
      `mlops ${args.join(' ')}: the --json output (exit ${run.code}) does not match ${shape} in schemas/results.schema.json: ${errors}\n${run.stdout.slice(0, 800)}`,
    )
  }
}
