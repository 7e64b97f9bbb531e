import type {ExitCodeName} from '../errors.js'
import {redact, redactJson} from '../util/redact.js'

/** The JSON printed on stdout under --json when a command fails. */
export interface ErrorJson {
  error: {code: ExitCodeName; exitCode: number; message: string; suggestion?: string}
}

/**
 * How every failure is reported, by every command and by the unknown-command hook alike:
 * stderr always carries the one `Error: ...` line (and a `Hint: ...` line where one helps),
 * for the person reading a terminal or a CI log; under --json, stdout also carries the
 * failure as one JSON object for the script that parses it. Both are redacted.
 */
export function reportFailure(described: ErrorJson['error'], options: {json: boolean}): void {
  if (options.json) process.stdout.write(`${JSON.stringify(redactJson({error: described} satisfies ErrorJson), null, 2)}\n`)
  process.stderr.write(failureLines(described))
}

/** The failure as the text lines stderr shows. */
export function failureLines(described: ErrorJson['error']): string {
  return redact(`Error: ${described.message}\n${described.suggestion ? `Hint: ${described.suggestion}\n` : ''}`)
}
