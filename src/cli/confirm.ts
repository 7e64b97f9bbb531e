import {UsageError} from '../errors.js'

/** Whether a prompt may wait for an answer: a terminal on both ends, not CI, not --json (rule 6: prompts never block automation). */
export function canPrompt(options: {json: boolean}): boolean {
  return !options.json && Boolean(process.stdin.isTTY && process.stdout.isTTY) && !process.env.CI
}

/**
 * Asks before a destructive step. --yes answers for the user; without a
 * terminal (CI, pipes, --json) it never waits for input: it refuses and
 * names the flag.
 */
export async function confirmOrRefuse(question: string, options: {yes: boolean; json: boolean}): Promise<boolean> {
  if (options.yes) return true
  if (!canPrompt(options)) {
    throw new UsageError(`${question} Refusing without confirmation.`, {suggestion: 'pass --yes to confirm'})
  }

  // Loaded only when a prompt is shown: it is not needed on the automated path.
  const {confirm} = await import('@inquirer/prompts')
  return confirm({message: question, default: false})
}
