import {hostname, userInfo} from 'node:os'
import {stat, stat as statFile} from 'node:fs/promises'
import {basename, join} from 'node:path'

import {ConflictError, IntegrityError, NotFoundError, UsageError} from '../errors.js'
import {type Digest, Digester, digestBuffer, digestFile} from '../util/digest.js'
import {gitState} from '../util/git.js'
import {closestMatch} from '../util/text.js'
import {type ObjectStat, type StorageBackend, isPreconditionFailed} from './backend.js'
import {InvalidManifestError, MANIFEST_SCHEMA_VERSION, type ModelManifest, parseAliasTarget, parseManifest, serializeManifest} from './manifest.js'
import {type InspectedModel} from './model-file.js'
import {LATEST, type ModelRef, compareVersions, formatRef} from './names.js'
import {FileHasher} from './file-hasher.js'
import {DEFAULT_TUNING, type TransferTuning, downloadVerified, existingSha256} from './transfer.js'

const MANIFEST = 'manifest.json'
const LABELS = 'labels.json'
const ALIASES = 'aliases'

export interface ModelSummary {
  name: string
  versions: number
  latest?: string
  aliases: Record<string, string>
  /** Objects of this model that could not be read as they should (a corrupt alias): listed, not fatal. */
  problems?: string[]
}

export interface VersionSummary {
  version: string
  size: number
  sha256: string
  createdAt: string
  aliases: string[]
  /** Why this version's manifest cannot be used; the other fields are then empty. */
  problem?: string
}

export interface PushRequest {
  model: InspectedModel
  name: string
  /** Explicit version; without it, the next integer. */
  version?: string
  metadata: Record<string, string>
  alias?: string
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
  seconds: number
}

export interface PullRequest {
  ref: ModelRef
  destination: string
  labelsDestination?: string
  onProgress?: (bytes: number, total: number) => void
  /** Called once the ref is resolved, before any byte moves. */
  onResolved?: (manifest: ModelManifest) => void
}

export interface PullResult {
  ref: string
  name: string
  version: string
  sha256: string
  bytes: number
  seconds: number
  skipped: boolean
  path: string
  labelsPath?: string
}

export interface AliasResult {
  name: string
  alias: string
  version: string
  previous?: string
}

/**
 * Versioned, immutable, verified models on any StorageBackend.
 *
 * Layout: <name>/<version>/{model file, labels.json, manifest.json} and
 * <name>/aliases/<alias>. A version exists once its manifest.json exists:
 * the manifest is written last, create-only, so exactly one of two
 * concurrent pushes of one version wins and readers never see half a version.
 */
export class ModelStore {
  private readonly tuning: TransferTuning

  constructor(readonly backend: StorageBackend, tuning: Partial<TransferTuning> & {timeoutMs: number}) {
    this.tuning = {...DEFAULT_TUNING, ...tuning}
  }

  get uri(): string {
    return this.backend.uri
  }

  async listModels(): Promise<ModelSummary[]> {
    const {keys} = await this.backend.list('')
    const models = new Map<string, ModelSummary>()
    const entry = (name: string) => models.get(name) ?? models.set(name, {name, versions: 0, aliases: {}}).get(name)!
    const aliasKeys: string[] = []
    for (const key of keys) {
      const [name, second, third, ...rest] = key.split('/')
      if (rest.length > 0 || third === undefined) continue
      if (second === ALIASES) {
        aliasKeys.push(key)
      } else if (third === MANIFEST) {
        const model = entry(name)
        model.versions++
        if (!model.latest || compareVersions(second, model.latest) > 0) model.latest = second
      }
    }

    await mapLimit(aliasKeys, 16, async key => {
      const [name, , alias] = key.split('/')
      try {
        const version = await this.readAlias(name, alias)
        if (version) entry(name).aliases[alias] = version
      } catch (error) {
        if (!(error instanceof IntegrityError)) throw error
        ;(entry(name).problems ??= []).push(error.message)
      }
    })
    return [...models.values()].sort((a, b) => a.name.localeCompare(b.name))
  }

  async listVersions(name: string): Promise<{name: string; versions: VersionSummary[]; aliases: Record<string, string>}> {
    const versionNames = await this.versionsOf(name)
    const aliases = await this.aliasesOf(name)
    if (versionNames.length === 0 && Object.keys(aliases).length === 0) throw await this.modelNotFound(name)
    // One corrupt manifest is reported on its line; the other versions are still listed.
    const versions = (await mapLimit(versionNames, 16, async (version): Promise<VersionSummary | undefined> => {
      const aliasesOf = (v: string) => Object.keys(aliases).filter(a => aliases[a] === v).sort()
      try {
        const m = await this.readManifest(name, version)
        return m && {version: m.version, size: m.size, sha256: m.sha256, createdAt: m.createdAt, aliases: aliasesOf(m.version)}
      } catch (error) {
        if (!(error instanceof IntegrityError)) throw error
        return {version, size: 0, sha256: '', createdAt: '', aliases: aliasesOf(version), problem: error.message}
      }
    })).filter((v): v is VersionSummary => v !== undefined)
    return {name, versions, aliases}
  }

  /** The manifest a ref (version, alias or latest) points at now. */
  async resolve(ref: ModelRef): Promise<ModelManifest> {
    const {name} = ref
    if (ref.ref === LATEST) {
      const versions = await this.versionsOf(name)
      if (versions.length === 0) throw await this.modelNotFound(name)
      return this.requireManifest(name, versions.at(-1)!)
    }

    const manifest = await this.readManifest(name, ref.ref)
    if (manifest) return manifest
    const aliased = await this.readAlias(name, ref.ref)
    if (aliased !== undefined) {
      const target = await this.readManifest(name, aliased)
      if (!target) throw new NotFoundError(`alias ${ref.ref} of ${name} points at version ${aliased}, which does not exist`, {
        suggestion: `point it at an existing version: mlops model alias set ${name}@VERSION ${ref.ref}`,
      })
      return target
    }

    const versions = await this.versionsOf(name)
    const aliases = Object.keys(await this.aliasesOf(name))
    if (versions.length === 0 && aliases.length === 0) throw await this.modelNotFound(name)
    throw new NotFoundError(`${name} has no version or alias "${ref.ref}" in ${this.uri}`, {
      suggestion: `versions: ${versions.join(', ') || '(none)'}${aliases.length > 0 ? `; aliases: ${aliases.join(', ')}` : ''}`,
    })
  }

  async push(request: PushRequest): Promise<PushResult> {
    const started = Date.now()
    const {name, model} = request
    const explicit = request.version
    let version = explicit ?? nextVersion(await this.versionsOf(name))
    if (explicit && await this.backend.stat(this.key(name, explicit, MANIFEST))) throw versionExists(name, explicit)

    const git = await gitState(request.workDir)
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.tryCommitVersion(request, version, git)
      if (outcome.committed) {
        if (request.alias) await this.setAlias({name, ref: version}, request.alias)
        return {
          name, version, ref: `${name}@${version}`, uri: `${this.uri}/${name}/${version}/${model.storedName}`,
          size: outcome.digest.size, sha256: outcome.digest.sha256, crc32c: outcome.digest.crc32c,
          alias: request.alias, seconds: (Date.now() - started) / 1000,
        }
      }

      // Another push took this version number first: with an explicit version that is a conflict,
      // with an automatic one, take the next number.
      if (explicit) throw versionExists(name, version)
      if (attempt >= 20) throw new ConflictError(`could not find a free version for ${name}: too many concurrent pushes`)
      version = nextVersion(await this.versionsOf(name), version)
    }
  }

  async pull(request: PullRequest): Promise<PullResult> {
    const started = Date.now()
    const manifest = await this.resolve(request.ref)
    request.onResolved?.(manifest)
    const {name, version} = manifest
    const label = `${name}@${version}`
    const destination = await intoFolder(request.destination, manifest.file)
    const result: PullResult = {
      ref: formatRef(request.ref), name, version, sha256: manifest.sha256, bytes: 0, seconds: 0, skipped: false, path: destination,
    }

    if (await existingSha256(destination, manifest.size) === manifest.sha256) {
      result.skipped = true
    } else {
      const key = this.key(name, version, manifest.file)
      const object = await this.backend.stat(key)
      if (!object) throw new IntegrityError(`${label}: the manifest exists but the model object ${manifest.file} is missing from ${this.uri}`)
      if (object.crc32c && manifest.crc32c && object.crc32c !== manifest.crc32c) {
        throw new IntegrityError(`${label}: the stored object has crc32c ${object.crc32c}, the manifest says ${manifest.crc32c}; the stored object is corrupt`, {
          suggestion: 'the destination was left untouched; push the model again as a new version',
        })
      }

      await downloadVerified({
        backend: this.backend, key, stat: object, destination, expected: manifest, label,
        tuning: this.tuning, onProgress: request.onProgress,
      })
      result.bytes = manifest.size
    }

    if (request.labelsDestination) {
      if (!manifest.labels) throw new NotFoundError(`${label} has no labels`, {suggestion: 'push it with --labels, or drop --labels-to'})
      const labelsKey = this.key(name, version, manifest.labels.file)
      const labelsDestination = await intoFolder(request.labelsDestination, manifest.labels.file)
      if (await existingSha256(labelsDestination, manifest.labels.size) !== manifest.labels.sha256) {
        const object = await this.backend.stat(labelsKey)
        if (!object) throw new IntegrityError(`${label}: the labels object is missing from ${this.uri}`)
        await downloadVerified({
          backend: this.backend, key: labelsKey, stat: object, destination: labelsDestination, expected: manifest.labels,
          label: `${label} labels`, tuning: this.tuning,
        })
      }

      result.labelsPath = labelsDestination
    }

    result.seconds = (Date.now() - started) / 1000
    return result
  }

  async setAlias(ref: ModelRef, alias: string): Promise<AliasResult> {
    const manifest = await this.resolve(ref)
    const key = `${manifest.name}/${ALIASES}/${alias}`
    const body = Buffer.from(`${JSON.stringify({version: manifest.version, updatedAt: new Date().toISOString()})}\n`)
    // Compare-and-swap on the alias object's generation: concurrent updates never interleave.
    for (;;) {
      const current = await this.backend.read(key)
      const previous = current ? formerTarget(current.data) : undefined
      try {
        await this.backend.write(key, body, {ifGeneration: current?.stat.generation ?? '0'})
        return {name: manifest.name, alias, version: manifest.version, previous}
      } catch (error) {
        if (!isPreconditionFailed(error)) throw error
      }
    }
  }

  async removeAlias(name: string, alias: string): Promise<AliasResult> {
    const key = `${name}/${ALIASES}/${alias}`
    const current = await this.backend.read(key)
    if (!current) {
      const aliases = Object.keys(await this.aliasesOf(name))
      throw new NotFoundError(`${name} has no alias "${alias}"`, {suggestion: aliases.length > 0 ? `aliases: ${aliases.join(', ')}` : `${name} has no aliases`})
    }

    try {
      await this.backend.delete(key, {ifGeneration: current.stat.generation})
    } catch (error) {
      if (isPreconditionFailed(error)) throw new ConflictError(`alias ${alias} of ${name} changed while it was being removed`, {suggestion: 'run the command again'})
      throw error
    }

    return {name, alias, version: formerTarget(current.data) ?? '', previous: formerTarget(current.data)}
  }

  /**
   * Deletes a version. Refuses while an alias points at it. The manifest goes
   * first, so the version stops existing atomically; the objects follow. A
   * version folder without a manifest (an interrupted push) is cleaned up too.
   * `confirm` is asked after the checks and before the first delete; false
   * leaves everything as it was and returns undefined.
   */
  async remove(name: string, version: string, confirm: () => Promise<boolean>): Promise<{deleted: string[]; committed: boolean} | undefined> {
    const prefix = `${name}/${version}/`
    const {keys} = await this.backend.list(prefix)
    if (keys.length === 0) {
      // Only what killed pushes left: nothing to confirm, nothing anyone could pull.
      const leftovers = await this.backend.removeLeftovers(prefix)
      if (leftovers.length > 0) return {deleted: leftovers, committed: false}
      const aliased = await this.readAlias(name, version)
      if (aliased !== undefined) {
        throw new UsageError(`${version} is an alias of ${name}@${aliased}; rm takes a version`, {suggestion: `mlops model rm ${name}@${aliased}`})
      }

      await this.resolve({name, ref: version})
      throw new NotFoundError(`${name}@${version} does not exist`)
    }

    const aliases = await this.aliasesOf(name)
    const pointing = Object.keys(aliases).filter(a => aliases[a] === version).sort()
    if (pointing.length > 0) {
      throw new ConflictError(`${name}@${version} is still the target of alias${pointing.length > 1 ? 'es' : ''} ${pointing.join(', ')}`, {
        suggestion: pointing.map(a => `mlops model alias rm ${name} ${a}`).join('; '),
      })
    }

    if (!await confirm()) return undefined
    const manifestKey = `${prefix}${MANIFEST}`
    const committed = keys.includes(manifestKey)
    const ordered = committed ? [manifestKey, ...keys.filter(k => k !== manifestKey)] : keys
    for (const key of ordered) await this.backend.delete(key)
    return {deleted: [...ordered, ...await this.backend.removeLeftovers(prefix)], committed}
  }

  private async tryCommitVersion(
    request: PushRequest,
    version: string,
    git: {commit: string; dirty: boolean} | undefined,
  ): Promise<{committed: false} | {committed: true; digest: Digest}> {
    const {name, model} = request
    const ref = `${name}@${version}`
    const modelKey = this.key(name, version, model.storedName)
    const uploaded: Array<{key: string; generation: string}> = []

    const modelObject = await this.putModelObject(request, version, modelKey)
    if (!modelObject) return {committed: false}
    if (modelObject.uploaded) uploaded.push({key: modelKey, generation: modelObject.stat.generation})
    const {digest} = modelObject

    let labels: ModelManifest['labels']
    if (model.labels) {
      const data = Buffer.from(`${JSON.stringify(model.labels, null, 2)}\n`)
      const labelsKey = this.key(name, version, LABELS)
      const stat = await this.createOrMatch(labelsKey, data, ref)
      if (stat.uploaded) uploaded.push({key: labelsKey, generation: stat.stat.generation})
      const labelsDigest = digestBuffer(data)
      labels = {file: LABELS, sha256: labelsDigest.sha256, size: labelsDigest.size, values: model.labels}
    }

    const manifest: ModelManifest = {
      schemaVersion: MANIFEST_SCHEMA_VERSION,
      name, version, file: model.storedName, format: model.onnx ? 'onnx' : 'other',
      size: digest.size, sha256: digest.sha256, crc32c: digest.crc32c,
      createdAt: new Date().toISOString(), createdBy: whoami(),
      source: {file: basename(model.path), ...(git ? {gitCommit: git.commit, gitDirty: git.dirty} : {})},
      metadata: request.metadata,
      ...(labels ? {labels} : {}),
      ...(model.onnx ? {onnx: model.onnx} : {}),
    }
    const body = serializeManifest(manifest)
    try {
      await this.backend.write(this.key(name, version, MANIFEST), body, {ifGeneration: '0'})
      return {committed: true, digest}
    } catch (error) {
      if (!isPreconditionFailed(error)) throw error
      // Lost the race for this version: take back what this attempt wrote, if it is still ours and
      // the winner does not use it (a concurrent push of the same content adopts this attempt's objects).
      const winner = await this.readManifest(name, version).catch(() => undefined)
      const adopted = new Set([winner?.file, winner?.labels?.file].filter(file => file !== undefined).map(file => this.key(name, version, file)))
      for (const object of uploaded) {
        if (!adopted.has(object.key)) await this.backend.delete(object.key, {ifGeneration: object.generation}).catch(() => {})
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
  private async putModelObject(request: PushRequest, version: string, key: string): Promise<{stat: ObjectStat; digest: Digest; uploaded: boolean} | undefined> {
    const {model} = request
    const before = await statFile(model.path)
    // The worker hashes the source file while the main thread streams it to the store.
    const hasher = new FileHasher(model.path, {crc32c: true})
    hasher.hashUpTo(model.size)
    const digesting = hasher.finish(model.size)
    digesting.catch(() => {})
    let stat: ObjectStat | undefined
    try {
      stat = await this.backend.upload(key, model.path, {ifGeneration: '0', onProgress: request.onProgress})
    } catch (error) {
      await hasher.abort()
      if (!isPreconditionFailed(error)) throw error
    }

    if (stat) {
      const {sha256, size, crc32c = ''} = await digesting
      const digest: Digest = {sha256, size, crc32c}
      const after = await statFile(model.path)
      if (after.size !== before.size || after.mtimeMs !== before.mtimeMs || digest.size !== model.size) {
        await this.backend.delete(key, {ifGeneration: stat.generation}).catch(() => {})
        throw new IntegrityError(`${model.path} changed while it was being pushed`, {suggestion: 'nothing was committed; push again once the file is complete'})
      }

      if (stat.size !== digest.size || (stat.crc32c && stat.crc32c !== digest.crc32c)) {
        await this.backend.delete(key, {ifGeneration: stat.generation}).catch(() => {})
        throw new IntegrityError(`upload of ${request.name}@${version} was corrupted in transit (store has ${stat.size} bytes, crc32c ${stat.crc32c}; sent ${digest.size} bytes, crc32c ${digest.crc32c})`, {
          suggestion: 'nothing was committed; push again',
        })
      }

      return {stat, digest, uploaded: true}
    }

    if (request.version === undefined) return undefined
    const ours = await digestFile(model.path)
    const theirs = await this.backend.stat(key)
    if (theirs && await this.sameContent(key, theirs, ours)) return {stat: theirs, digest: ours, uploaded: false}
    if (await this.backend.stat(this.key(request.name, version, MANIFEST))) return undefined
    throw new ConflictError(`${request.name}@${version} is being pushed by another process with different content, or an earlier push of it was interrupted`, {
      suggestion: `if no other push is running, remove the leftovers with: mlops model rm ${request.name}@${version} --yes`,
    })
  }

  private async sameContent(key: string, stat: ObjectStat, digest: Digest): Promise<boolean> {
    if (stat.size !== digest.size) return false
    if (stat.crc32c) return stat.crc32c === digest.crc32c
    const digester = new Digester()
    await this.backend.readRange(key, stat.generation, 0, stat.size, chunk => digester.update(chunk), new AbortController().signal)
    return digester.digest().sha256 === digest.sha256
  }

  /** Create-only write of a small object; an identical existing object counts as written (a retried or concurrent push). */
  private async createOrMatch(key: string, data: Buffer, ref: string): Promise<{stat: ObjectStat; uploaded: boolean}> {
    try {
      return {stat: await this.backend.write(key, data, {ifGeneration: '0'}), uploaded: true}
    } catch (error) {
      if (!isPreconditionFailed(error)) throw error
    }

    const existing = await this.backend.read(key)
    if (existing?.data.equals(data)) return {stat: existing.stat, uploaded: false}
    throw new ConflictError(`${ref} is being pushed by another process with different content, or an earlier push of it was interrupted`, {
      suggestion: `if no other push is running, remove the leftovers with: mlops model rm ${ref} --yes`,
    })
  }

  private key(name: string, version: string, file: string): string {
    return `${name}/${version}/${file}`
  }

  private async versionsOf(name: string): Promise<string[]> {
    const {keys} = await this.backend.list(`${name}/`)
    return keys
      .map(key => key.split('/'))
      .filter(parts => parts.length === 3 && parts[2] === MANIFEST && parts[1] !== ALIASES)
      .map(parts => parts[1])
      .sort(compareVersions)
  }

  private async aliasesOf(name: string): Promise<Record<string, string>> {
    const {keys} = await this.backend.list(`${name}/${ALIASES}/`)
    const aliases: Record<string, string> = {}
    await mapLimit(keys, 16, async key => {
      const alias = key.split('/')[2]
      // A corrupt alias points nowhere (resolving it says so); it does not hide the others.
      const version = await this.readAlias(name, alias).catch((error: unknown) => {
        if (error instanceof IntegrityError) return undefined
        throw error
      })
      if (version !== undefined) aliases[alias] = version
    })
    return aliases
  }

  private async readAlias(name: string, alias: string): Promise<string | undefined> {
    const object = await this.backend.read(`${name}/${ALIASES}/${alias}`)
    if (!object) return undefined
    try {
      return parseAliasTarget(object.data)
    } catch (error) {
      if (error instanceof InvalidManifestError) throw new IntegrityError(`${name} alias ${alias} in ${this.uri} is corrupt: ${error.message}`, {suggestion: `point it again: mlops model alias set ${name}@VERSION ${alias}`})
      throw error
    }
  }

  private async readManifest(name: string, version: string): Promise<ModelManifest | undefined> {
    const object = await this.backend.read(this.key(name, version, MANIFEST))
    if (!object) return undefined
    try {
      return parseManifest(object.data, {name, version})
    } catch (error) {
      if (error instanceof InvalidManifestError) throw new IntegrityError(`${name}@${version}: the manifest in ${this.uri} is corrupt: ${error.message}`)
      throw error
    }
  }

  private async requireManifest(name: string, version: string): Promise<ModelManifest> {
    const manifest = await this.readManifest(name, version)
    if (!manifest) throw new NotFoundError(`${name}@${version} does not exist in ${this.uri}`)
    return manifest
  }

  private async modelNotFound(name: string): Promise<NotFoundError> {
    const {prefixes} = await this.backend.list('', {delimiter: true})
    const names = prefixes.map(p => p.replace(/\/$/, ''))
    const close = closestMatch(name, names)
    return new NotFoundError(`model "${name}" not found in ${this.uri}`, {
      suggestion: close ? `did you mean "${close}"?` : names.length > 0 ? `models: ${names.slice(0, 10).join(', ')}` : 'the store is empty; push a model with: mlops model push FILE --name NAME',
    })
  }
}

/** A destination that is an existing folder, or ends in "/", receives the file under its stored name. */
async function intoFolder(destination: string, fileName: string): Promise<string> {
  if (/[/\\]$/.test(destination)) return join(destination, fileName)
  const info = await stat(destination).catch(() => undefined)
  return info?.isDirectory() ? join(destination, fileName) : destination
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

/** What an alias pointed at, for reports; a corrupt alias can still be set again or removed. */
function formerTarget(data: Buffer): string | undefined {
  try {
    return parseAliasTarget(data)
  } catch {
    return undefined
  }
}

function whoami(): string {
  try {
    return `${userInfo().username}@${hostname()}`
  } catch {
    return hostname()
  }
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = Array.from({length: items.length})
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await fn(items[index])
    }
  }

  await Promise.all(Array.from({length: Math.min(limit, items.length)}, worker))
  return results
}
