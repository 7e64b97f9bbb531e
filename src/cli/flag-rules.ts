import {UsageError} from '../errors.js'
import {TARGETS, type TargetName, ownerOf} from '../targets/target.js'

/** Whether a flag's value came from its environment variable (oclif's `env`) rather than the command line. */
export function fromEnvironment(definition: {env?: string} | undefined, value: unknown): boolean {
  return definition?.env !== undefined && value !== undefined && process.env[definition.env] === value
}

function given(flags: Record<string, unknown>, definitions: Record<string, {env?: string}>, name: string): boolean {
  const value = flags[name]
  if (value === undefined || value === false || value === 0 || (Array.isArray(value) && value.length === 0)) return false
  return !fromEnvironment(definitions[name], value)
}

/**
 * Flags that belong to another target are refused rather than silently
 * ignored (--namespace with the local target, --port with k8s); a value that
 * came from the environment (MLOPS_NAMESPACE exported for the cluster) is
 * not an error. `where` names what was chosen: a target, or --url.
 */
export function refuseForeignFlags(
  flags: Record<string, unknown>,
  definitions: Record<string, {env?: string}>,
  where: string,
  accepts: readonly string[],
): void {
  const foreign = Object.keys(definitions).filter(
    name => ownerOf(name) !== undefined && !accepts.includes(name) && given(flags, definitions, name),
  )
  if (foreign.length === 0) return
  const owner = ownerOf(foreign[0]) as TargetName
  const order = TARGETS[owner].flags
  const names = foreign.filter(name => ownerOf(name) === owner).sort((a, b) => order.indexOf(a) - order.indexOf(b))
  throw new UsageError(
    `${names.map(name => `--${name}`).join(', ')} ${names.length === 1 ? 'applies' : 'apply'} to --target ${owner}, not ${where}`,
    {
      suggestion: TARGETS[where as TargetName]?.hints?.[names[0]] ?? `drop it, or pass --target ${owner}`,
    },
  )
}
