/** OCI names, as the distribution spec and the Docker CLI read them; shared by the registry client and the store's records. */

/** A repository path after the registry: lower-case components separated by /. */
export const REPOSITORY_PATH = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/
export const DIGEST = /^sha256:[0-9a-f]{64}$/
export const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/

/** registry[:port], a host name that says it is one (a dot or a port), or localhost. */
export function isRegistryHost(text: string): boolean {
  return /^[A-Za-z0-9.-]+(?::\d{1,5})?$/.test(text) && (/[.:]/.test(text) || text === 'localhost')
}

/** REGISTRY/REPOSITORY with no tag or digest, split; undefined when it is not one. */
export function splitRepository(text: string): {registry: string; repository: string} | undefined {
  const slash = text.indexOf('/')
  if (slash <= 0 || text.length > 255) return undefined
  const registry = text.slice(0, slash)
  const repository = text.slice(slash + 1)
  return isRegistryHost(registry) && REPOSITORY_PATH.test(repository) ? {registry, repository} : undefined
}
