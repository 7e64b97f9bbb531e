import {hostname, userInfo} from 'node:os'
import {stat as statFile} from 'node:fs/promises'
import {basename} from 'node:path'

import {ConflictError, IntegrityError, NotFoundError, UsageError} from '../errors.js'
import {type Digest, Digester, digestBuffer, digestFile} from '../util/digest.js'
import {gitState} from '../util/git.js'
import {type ObjectStat, isPreconditionFailed} from './backend.js'
import {setAlias} from './aliases.js'
import {type Catalog, LABELS, MANIFEST} from './catalog.js'
import {FileHasher} from './file-hasher.js'
import {MANIFEST_SCHEMA_VERSION, type ModelManifest, serializeManifest} from './manifest.js'
import type {InspectedModel} from './model-file.js'
import {type ComputedReference, type ReferenceSummary, makeReference, recordReference} from './references.js'

export interface PushRequest {
  model: InspectedModel
  name: string
  /** Explicit version; without it, the next integer. */
  version?: string
  metadata: Record<string, string>
  alias?: string
  /** Rows and the outputs computed for them, recorded beside the version once it is committed. */
  reference?: ComputedReference
  /** Folder whose git commit is recorded. */
  workDir: string
  onProgress?: (bytes: number, total: number) => void
}

export interface PushResult {
  name: string
  version: string
  ref: string
  uri: string
  size: number
  sha256: string
  crc32c: string
  alias?: string
  /** The reference set recorded beside the version (--reference). */
  reference?: ReferenceSummary
  seconds: number
}

/**
 * The commit protocol, in one place. A version exists once its manifest.json
 * exists: push writes the objects create-only, then the manifest last,
 * create-only, so exactly one of two concurrent pushes of one version wins and
 * readers never see half a version; remove deletes the manifest first, so the
 * version stops existing atomically, then its objects.
 */
export async function pushVersion(catalog: Catalog, request: PushRequest): Promise<PushResult> {
  const started = Date.now()
  const {name, model} = request
  const explicit = request.version
  let version = explicit ?? nextVersion(await catalog.versionsOf(name))
  if (explicit && (await catalog.backend.stat(catalog.key(name, explicit, MANIFEST)))) throw versionExists(name, explicit)

  const git = await gitState(request.workDir)
  for (let attempt = 0; ; attempt++) {
    const outcome = await tryCommitVersion(catalog, request, version, git)
    if (outcome.committed) {
      // Before the alias: an alias never points at a version whose reference set failed to be recorded.
      const reference =
        request.reference &&
        (await recordReference(catalog, outcome.manifest, makeReference(outcome.manifest, request.reference), {replace: false}))
      if (request.alias) await setAlias(catalog, {name, ref: version}, request.alias)
      return {
        name,
        version,
        ref: `${name}@${version}`,
        uri: `${catalog.uri}/${name}/${version}/${model.storedName}`,
        size: outcome.digest.size,
        sha256: outcome.digest.sha256,
        crc32c: outcome.digest.crc32c,
        alias: request.alias,
        ...(reference ? {reference: reference.reference} : {}),
        seconds: (Date.now() - started) / 1000,
      }
    }

    // Another push took this version number first: with an explicit version that is a conflict,
    // with an automatic one, take the next number.
    if (explicit) throw versionExists(name, version)
    if (attempt >= 20) throw new ConflictError(`could not find a free version for ${name}: too many concurrent pushes`)
    version = nextVersion(await catalog.versionsOf(name), version)
  }
}

/**
 * Deletes a version. Refuses while an alias points at it. The manifest goes
 * first, so the version stops existing atomically; the objects follow. A
 * version folder without a manifest (an interrupted push) is cleaned up too.
 * `confirm` is asked after the checks and before the first delete; false
 * leaves everything as it was and returns undefined.
 */
export async function removeVersion(
  catalog: Catalog,
  name: string,
  version: string,
  confirm: () => Promise<boolean>,
): Promise<{deleted: string[]; committed: boolean} | undefined> {
  const prefix = `${name}/${version}/`
  const {keys} = await catalog.backend.list(prefix)
  if (keys.length === 0) {
    // Only what killed pushes left: nothing to confirm, nothing anyone could pull.
    const leftovers = await catalog.backend.removeLeftovers(prefix)
    if (leftovers.length > 0) return {deleted: leftovers, committed: false}
    const aliased = await catalog.readAlias(name, version)
    if (aliased !== undefined) {
      throw new UsageError(`${version} is an alias of ${name}@${aliased}; rm takes a version`, {
        suggestion: `mlops model rm ${name}@${aliased}`,
      })
    }

    await catalog.resolve({name, ref: version})
    throw new NotFoundError(`${name}@${version} does not exist`)
  }

  const aliases = await catalog.aliasesOf(name)
  const pointing = Object.keys(aliases)
    .filter(a => aliases[a] === version)
    .sort()
  if (pointing.length > 0) {
    throw new ConflictError(`${name}@${version} is still the target of alias${pointing.length > 1 ? 'es' : ''} ${pointing.join(', ')}`, {
      suggestion: pointing.map(a => `mlops model alias rm ${name} ${a}`).join('; '),
    })
  }

  if (!(await confirm())) return undefined
  const manifestKey = `${prefix}${MANIFEST}`
  const committed = keys.includes(manifestKey)
  const ordered = committed ? [manifestKey, ...keys.filter(k => k !== manifestKey)] : keys
  for (const key of ordered) await catalog.backend.delete(key)
  return {deleted: [...ordered, ...(await catalog.backend.removeLeftovers(prefix))], committed}
}

async function tryCommitVersion(
  catalog: Catalog,
  request: PushRequest,
  version: string,
  git: {commit: string; dirty: boolean} | undefined,
): Promise<{committed: false} | {committed: true; digest: Digest; manifest: ModelManifest}> {
  const {name, model} = request
  const ref = `${name}@${version}`
  const modelKey = catalog.key(name, version, model.storedName)
  const uploaded: Array<{key: string; generation: string}> = []

  const modelObject = await putModelObject(catalog, request, version, modelKey)
  if (!modelObject) return {committed: false}
  if (modelObject.uploaded) uploaded.push({key: modelKey, generation: modelObject.stat.generation})
  const {digest} = modelObject

  let labels: ModelManifest['labels']
  if (model.labels) {
    const data = Buffer.from(`${JSON.stringify(model.labels, null, 2)}\n`)
    const labelsKey = catalog.key(name, version, LABELS)
    const stat = await createOrMatch(catalog, labelsKey, data, ref)
    if (stat.uploaded) uploaded.push({key: labelsKey, generation: stat.stat.generation})
    const labelsDigest = digestBuffer(data)
    labels = {file: LABELS, sha256: labelsDigest.sha256, size: labelsDigest.size, values: model.labels}
  }

  const manifest: ModelManifest = {
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    name,
    version,
    file: model.storedName,
    format: model.onnx ? 'onnx' : 'other',
    size: digest.size,
    sha256: digest.sha256,
    crc32c: digest.crc32c,
    createdAt: new Date().toISOString(),
    createdBy: whoami(),
    source: {file: basename(model.path), ...(git ? {gitCommit: git.commit, gitDirty: git.dirty} : {})},
    metadata: request.metadata,
    ...(labels ? {labels} : {}),
    ...(model.onnx ? {onnx: model.onnx} : {}),
  }
  const body = serializeManifest(manifest)
  try {
    await catalog.backend.write(catalog.key(name, version, MANIFEST), body, {ifGeneration: '0'})
    return {committed: true, digest, manifest}
  } catch (error) {
    if (!isPreconditionFailed(error)) throw error
    // Lost the race for this version: take back what this attempt wrote, if it is still ours and
    // the winner does not use it (a concurrent push of the same content adopts this attempt's objects).
    const winner = await catalog.readManifest(name, version).catch(() => undefined)
    const adopted = new Set(
      [winner?.file, winner?.labels?.file].filter(file => file !== undefined).map(file => catalog.key(name, version, file)),
    )
    for (const object of uploaded) {
      if (!adopted.has(object.key)) await catalog.backend.delete(object.key, {ifGeneration: object.generation}).catch(() => {})
    }

    return {committed: false}
  }
}

/**
 * Uploads the model file create-only, hashing it in the same pass. When the
 * object is already there without a manifest (a concurrent push, or one that
 * was interrupted), it is adopted if it has the same content, and is a
 * conflict otherwise. Returns undefined when an automatic version number was
 * taken by someone else.
 */
async function putModelObject(
  catalog: Catalog,
  request: PushRequest,
  version: string,
  key: string,
): Promise<{stat: ObjectStat; digest: Digest; uploaded: boolean} | undefined> {
  const {model} = request
  const before = await statFile(model.path)
  // The worker hashes the source file while the main thread streams it to the store.
  const hasher = new FileHasher(model.path, {crc32c: true})
  hasher.hashUpTo(model.size)
  const digesting = hasher.finish(model.size)
  digesting.catch(() => {})
  let stat: ObjectStat | undefined
  try {
    stat = await catalog.backend.upload(key, model.path, {ifGeneration: '0', onProgress: request.onProgress})
  } catch (error) {
    await hasher.abort()
    if (!isPreconditionFailed(error)) throw error
  }

  if (stat) {
    const {sha256, size, crc32c = ''} = await digesting
    const digest: Digest = {sha256, size, crc32c}
    const after = await statFile(model.path)
    if (after.size !== before.size || after.mtimeMs !== before.mtimeMs || digest.size !== model.size) {
      await catalog.backend.delete(key, {ifGeneration: stat.generation}).catch(() => {})
      throw new IntegrityError(`${model.path} changed while it was being pushed`, {
        suggestion: 'nothing was committed; push again once the file is complete',
      })
    }

    if (stat.size !== digest.size || (stat.crc32c && stat.crc32c !== digest.crc32c)) {
      await catalog.backend.delete(key, {ifGeneration: stat.generation}).catch(() => {})
      throw new IntegrityError(
        `upload of ${request.name}@${version} was corrupted in transit (store has ${stat.size} bytes, crc32c ${stat.crc32c}; sent ${digest.size} bytes, crc32c ${digest.crc32c})`,
        {
          suggestion: 'nothing was committed; push again',
        },
      )
    }

    return {stat, digest, uploaded: true}
  }

  if (request.version === undefined) return undefined
  const ours = await digestFile(model.path)
  const theirs = await catalog.backend.stat(key)
  if (theirs && (await sameContent(catalog, key, theirs, ours))) return {stat: theirs, digest: ours, uploaded: false}
  if (await catalog.backend.stat(catalog.key(request.name, version, MANIFEST))) return undefined
  throw new ConflictError(
    `${request.name}@${version} is being pushed by another process with different content, or an earlier push of it was interrupted`,
    {
      suggestion: `if no other push is running, remove the leftovers with: mlops model rm ${request.name}@${version} --yes`,
    },
  )
}

async function sameContent(catalog: Catalog, key: string, stat: ObjectStat, digest: Digest): Promise<boolean> {
  if (stat.size !== digest.size) return false
  if (stat.crc32c) return stat.crc32c === digest.crc32c
  const digester = new Digester()
  await catalog.backend.readRange(key, stat.generation, 0, stat.size, chunk => digester.update(chunk), new AbortController().signal)
  return digester.digest().sha256 === digest.sha256
}

/** Create-only write of a small object; an identical existing object counts as written (a retried or concurrent push). */
async function createOrMatch(catalog: Catalog, key: string, data: Buffer, ref: string): Promise<{stat: ObjectStat; uploaded: boolean}> {
  try {
    return {stat: await catalog.backend.write(key, data, {ifGeneration: '0'}), uploaded: true}
  } catch (error) {
    if (!isPreconditionFailed(error)) throw error
  }

  const existing = await catalog.backend.read(key)
  if (existing?.data.equals(data)) return {stat: existing.stat, uploaded: false}
  throw new ConflictError(`${ref} is being pushed by another process with different content, or an earlier push of it was interrupted`, {
    suggestion: `if no other push is running, remove the leftovers with: mlops model rm ${ref} --yes`,
  })
}

function versionExists(name: string, version: string): ConflictError {
  return new ConflictError(`${name}@${version} already exists; pushed versions are immutable`, {
    suggestion: 'push under a new version (omit --version to take the next number)',
  })
}

function nextVersion(existing: string[], after?: string): string {
  const numbers = existing.filter(v => /^\d+$/.test(v)).map(Number)
  if (after && /^\d+$/.test(after)) numbers.push(Number(after))
  return String(numbers.length > 0 ? Math.max(...numbers) + 1 : 1)
}

function whoami(): string {
  try {
    return `${userInfo().username}@${hostname()}`
  } catch {
    return hostname()
  }
}
