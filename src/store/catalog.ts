import {IntegrityError, NotFoundError} from '../errors.js'
import {closestMatch} from '../util/text.js'
import type {StorageBackend} from './backend.js'
import {InvalidManifestError, type ModelManifest, parseAliasTarget, parseManifest} from './manifest.js'
import {LATEST, type ModelRef, compareVersions} from './names.js'

/** The store's layout: <name>/<version>/{model file, labels.json, manifest.json} and <name>/aliases/<alias>. */
export const MANIFEST = 'manifest.json'
export const LABELS = 'labels.json'
export const ALIASES = 'aliases'

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

/**
 * Reading the store: which models, versions and aliases exist, and what a
 * ref resolves to. Everything read back is validated (a corrupt manifest or
 * alias is an integrity error naming it, never trusted).
 */
export class Catalog {
  constructor(readonly backend: StorageBackend) {}

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
    const versions = (
      await mapLimit(versionNames, 16, async (version): Promise<VersionSummary | undefined> => {
        const aliasesOf = (v: string) =>
          Object.keys(aliases)
            .filter(a => aliases[a] === v)
            .sort()
        try {
          const m = await this.readManifest(name, version)
          return m && {version: m.version, size: m.size, sha256: m.sha256, createdAt: m.createdAt, aliases: aliasesOf(m.version)}
        } catch (error) {
          if (!(error instanceof IntegrityError)) throw error
          return {version, size: 0, sha256: '', createdAt: '', aliases: aliasesOf(version), problem: error.message}
        }
      })
    ).filter((v): v is VersionSummary => v !== undefined)
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
      if (!target)
        throw new NotFoundError(`alias ${ref.ref} of ${name} points at version ${aliased}, which does not exist`, {
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

  key(name: string, version: string, file: string): string {
    return `${name}/${version}/${file}`
  }

  async versionsOf(name: string): Promise<string[]> {
    const {keys} = await this.backend.list(`${name}/`)
    return keys
      .map(key => key.split('/'))
      .filter(parts => parts.length === 3 && parts[2] === MANIFEST && parts[1] !== ALIASES)
      .map(parts => parts[1])
      .sort(compareVersions)
  }

  async aliasesOf(name: string): Promise<Record<string, string>> {
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

  async readAlias(name: string, alias: string): Promise<string | undefined> {
    const object = await this.backend.read(`${name}/${ALIASES}/${alias}`)
    if (!object) return undefined
    try {
      return parseAliasTarget(object.data)
    } catch (error) {
      if (error instanceof InvalidManifestError)
        throw new IntegrityError(`${name} alias ${alias} in ${this.uri} is corrupt: ${error.message}`, {
          suggestion: `point it again: mlops model alias set ${name}@VERSION ${alias}`,
        })
      throw error
    }
  }

  async readManifest(name: string, version: string): Promise<ModelManifest | undefined> {
    const object = await this.backend.read(this.key(name, version, MANIFEST))
    if (!object) return undefined
    try {
      return parseManifest(object.data, {name, version})
    } catch (error) {
      if (error instanceof InvalidManifestError)
        throw new IntegrityError(`${name}@${version}: the manifest in ${this.uri} is corrupt: ${error.message}`)
      throw error
    }
  }

  async requireManifest(name: string, version: string): Promise<ModelManifest> {
    const manifest = await this.readManifest(name, version)
    if (!manifest) throw new NotFoundError(`${name}@${version} does not exist in ${this.uri}`)
    return manifest
  }

  async modelNotFound(name: string): Promise<NotFoundError> {
    const {prefixes} = await this.backend.list('', {delimiter: true})
    const names = prefixes.map(p => p.replace(/\/$/, ''))
    const close = closestMatch(name, names)
    return new NotFoundError(`model "${name}" not found in ${this.uri}`, {
      suggestion: close
        ? `did you mean "${close}"?`
        : names.length > 0
          ? `models: ${names.slice(0, 10).join(', ')}`
          : 'the store is empty; push a model with: mlops model push FILE --name NAME',
    })
  }
}

export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
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
