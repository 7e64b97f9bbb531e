import {UsageError} from '../errors.js'

/**
 * Asks before a destructive step. --yes answers for the user; without a
 * terminal (CI, pipes, --json) it never waits for input: it refuses and
 * names the flag.
 */
export async function confirmOrRefuse(question: string, options: {yes: boolean; json: boolean}): Promise<boolean> {
  if (options.yes) return true
  if (options.json || !process.stdin.isTTY || !process.stdout.isTTY || process.env.CI) {
    throw new UsageError(`${question} Refusing without confirmation.`, {suggestion: 'pass --yes to confirm'})
  }

  // Loaded only when a prompt is shown: it is not needed on the automated path.
  const {confirm} = await import('@inquirer/prompts')
  return confirm({message: question, default: false})
}
