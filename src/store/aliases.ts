import {ConflictError, NotFoundError} from '../errors.js'
import {isPreconditionFailed} from './backend.js'
import {ALIASES, type Catalog} from './catalog.js'
import {parseAliasTarget} from './manifest.js'
import type {ModelRef} from './names.js'

export interface AliasResult {
  name: string
  alias: string
  version: string
  previous?: string
}

/** Points an alias at the version a ref resolves to, by compare-and-swap on the alias object. */
export async function setAlias(catalog: Catalog, ref: ModelRef, alias: string): Promise<AliasResult> {
  const manifest = await catalog.resolve(ref)
  const key = `${manifest.name}/${ALIASES}/${alias}`
  const body = Buffer.from(`${JSON.stringify({version: manifest.version, updatedAt: new Date().toISOString()})}\n`)
  // Compare-and-swap on the alias object's generation: concurrent updates never interleave.
  for (;;) {
    const current = await catalog.backend.read(key)
    const previous = current ? formerTarget(current.data) : undefined
    try {
      await catalog.backend.write(key, body, {ifGeneration: current?.stat.generation ?? '0'})
      return {name: manifest.name, alias, version: manifest.version, previous}
    } catch (error) {
      if (!isPreconditionFailed(error)) throw error
    }
  }
}

/** Removes an alias, only if it did not change meanwhile. */
export async function removeAlias(catalog: Catalog, name: string, alias: string): Promise<AliasResult> {
  const key = `${name}/${ALIASES}/${alias}`
  const current = await catalog.backend.read(key)
  if (!current) {
    const aliases = Object.keys(await catalog.aliasesOf(name))
    throw new NotFoundError(`${name} has no alias "${alias}"`, {
      suggestion: aliases.length > 0 ? `aliases: ${aliases.join(', ')}` : `${name} has no aliases`,
    })
  }

  try {
    await catalog.backend.delete(key, {ifGeneration: current.stat.generation})
  } catch (error) {
    if (isPreconditionFailed(error))
      throw new ConflictError(`alias ${alias} of ${name} changed while it was being removed`, {suggestion: 'run the command again'})
    throw error
  }

  return {name, alias, version: formerTarget(current.data) ?? '', previous: formerTarget(current.data)}
}

/** What an alias pointed at, for reports; a corrupt alias can still be set again or removed. */
function formerTarget(data: Buffer): string | undefined {
  try {
    return parseAliasTarget(data)
  } catch {
    return undefined
  }
}
