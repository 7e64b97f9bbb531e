/**
 * Puts an environment variable back as it was. `process.env.X = undefined`
 * would leave the string "undefined" for every later test of the run.
 */
export function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name]
  else process.env[name] = value
}
