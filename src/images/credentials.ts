import {execFile} from 'node:child_process'
import {readFile} from 'node:fs/promises'
import {homedir} from 'node:os'
import {join} from 'node:path'

import {PermissionError, UsageError} from '../errors.js'

/** Where registry credentials come from besides the Docker CLI's config: a user flag or variable, and a password variable only. */
export const REGISTRY_ENV = {username: 'MLOPS_REGISTRY_USERNAME', password: 'MLOPS_REGISTRY_PASSWORD'} as const
export const SET_REGISTRY_ENV = `set ${REGISTRY_ENV.username} and ${REGISTRY_ENV.password}`

/** --username (or its variable) with the password variable: a password is never a flag, so it never shows in a process list. */
export function givenCredentials(username: string | undefined): {username?: string; password?: string} {
  return {username, password: process.env[REGISTRY_ENV.password]}
}

/** What the engine's push API takes in X-Registry-Auth. */
export interface RegistryAuth {
  serveraddress: string
  username?: string
  password?: string
  identitytoken?: string
}

interface DockerConfig {
  auths?: Record<string, {auth?: string; identitytoken?: string}>
  credHelpers?: Record<string, string>
  credsStore?: string
}

/**
 * Credentials for a registry the way the Docker CLI finds them: explicit
 * username and password first, then $DOCKER_CONFIG/config.json (default
 * ~/.docker): a credHelpers entry for the registry, its auths entry, then
 * the credsStore helper. Undefined when there are none (anonymous push).
 */
export async function registryCredentials(
  registry: string,
  given: {username?: string; password?: string},
): Promise<RegistryAuth | undefined> {
  // An empty variable (CI templates export them unset as '') means not given.
  const explicit = {username: given.username || undefined, password: given.password || undefined}
  if (explicit.username !== undefined || explicit.password !== undefined) {
    if (!explicit.username || !explicit.password)
      throw new UsageError('registry credentials need both a username and a password', {
        suggestion: SET_REGISTRY_ENV,
      })
    return {serveraddress: registry, username: explicit.username, password: explicit.password}
  }

  const dir = process.env.DOCKER_CONFIG ?? join(homedir(), '.docker')
  const file = join(dir, 'config.json')
  let parsed: unknown
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new UsageError(`${file} is not valid JSON: ${(error as Error).message}`)
  }
  const config = dockerConfig(parsed, file)

  const keys =
    registry === 'docker.io'
      ? ['https://index.docker.io/v1/', 'docker.io', 'index.docker.io']
      : [registry, `https://${registry}`, `http://${registry}`]
  const helper = keys.map(key => config.credHelpers?.[key]).find(Boolean)
  if (helper) return fromHelper(helper, keys[0], registry)
  const entry = keys.map(key => config.auths?.[key]).find(Boolean)
  if (entry?.identitytoken) return {serveraddress: registry, identitytoken: entry.identitytoken}
  if (entry?.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    return {serveraddress: registry, username: decoded.slice(0, colon), password: decoded.slice(colon + 1)}
  }

  if (config.credsStore) return fromHelper(config.credsStore, keys[0], registry)
  return undefined
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * config.json read as strictly as a flag: a helper's name becomes part of a
 * program's name (docker-credential-NAME), so it is a plain word, and every
 * other field has the type the Docker CLI writes.
 */
function dockerConfig(parsed: unknown, file: string): DockerConfig {
  const invalid = (what: string) =>
    new UsageError(`${file} is not a Docker config: ${what}`, {
      suggestion: 'fix it, log in again (docker login), or point DOCKER_CONFIG elsewhere',
    })
  if (!isRecord(parsed))
    throw invalid(`expected a JSON object, found ${parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : typeof parsed}`)
  const helperName = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
  const {auths, credHelpers, credsStore} = parsed
  if (credsStore !== undefined && (typeof credsStore !== 'string' || !helperName.test(credsStore)))
    throw invalid('credsStore is not a helper name')
  if (
    credHelpers !== undefined &&
    (!isRecord(credHelpers) || Object.values(credHelpers).some(name => typeof name !== 'string' || !helperName.test(name)))
  )
    throw invalid('credHelpers maps a registry to something that is not a helper name')
  if (
    auths !== undefined &&
    (!isRecord(auths) ||
      Object.values(auths).some(
        entry => !isRecord(entry) || ['auth', 'identitytoken'].some(key => entry[key] !== undefined && typeof entry[key] !== 'string'),
      ))
  )
    throw invalid('auths has an entry whose auth or identitytoken is not a string')
  return parsed
}

async function fromHelper(helper: string, key: string, registry: string): Promise<RegistryAuth | undefined> {
  const program = `docker-credential-${helper}`
  const output = await new Promise<string>((resolve, reject) => {
    const child = execFile(program, ['get'], {timeout: 30_000}, (error, stdout, stderr) => {
      if (!error) resolve(stdout)
      else if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        reject(
          new PermissionError(`the credential helper ${program} is not installed`, {
            suggestion: 'install it, or log in again without a helper (docker login), or set MLOPS_REGISTRY_USERNAME/PASSWORD',
          }),
        )
      else if (/credentials not found/i.test(stdout + stderr)) resolve('')
      else reject(new PermissionError(`${program} failed for ${registry}: ${(stderr || stdout).trim().split('\n')[0]}`))
    })
    // A helper that exits without reading its input: the pipe's error is the exit's, reported above.
    child.stdin?.on('error', () => {})
    child.stdin?.end(key)
  })
  if (!output.trim()) return undefined
  let answer: unknown
  try {
    answer = JSON.parse(output)
  } catch {
    answer = undefined
  }
  // Never quoted: the output of a credential helper is a secret.
  if (!isRecord(answer) || typeof answer.Username !== 'string' || typeof answer.Secret !== 'string')
    throw new PermissionError(`${program} answered something other than {"Username", "Secret"} JSON for ${registry}`, {
      suggestion: `check the helper (echo ${key} | ${program} get), or set MLOPS_REGISTRY_USERNAME/PASSWORD`,
    })
  const {Username, Secret} = answer
  return Username === '<token>'
    ? {serveraddress: registry, identitytoken: Secret}
    : {serveraddress: registry, username: Username, password: Secret}
}
