/**
 * Records kept beside a version's immutable manifest (<name>/<version>/FILE): where it was
 * published (images.json), which API images it was verified on (verified.json). Each is a list
 * updated by compare-and-swap on its generation, so concurrent writers of other entries are kept,
 * and read back as strictly as any input: a record that does not parse is an integrity error.
 */
import {IntegrityError, MlopsError} from '../errors.js'
import {isPreconditionFailed} from './backend.js'
import type {Catalog} from './catalog.js'

export interface VersionRecord<T> {
  /** Object name inside the version folder. */
  file: string
  /** What the record is, in words, for errors: "the published images record". */
  what: string
  /** Parses the stored bytes; throws a plain Error saying what is wrong. */
  parse(data: Buffer): T[]
  /** Serializes the entries. */
  format(entries: T[]): Buffer
  /** How to put a corrupt record right, for the suggestion. */
  repair(name: string, version: string): string
}

export async function readVersionRecord<T>(catalog: Catalog, kind: VersionRecord<T>, name: string, version: string): Promise<T[]> {
  try {
    const object = await catalog.backend.read(catalog.key(name, version, kind.file))
    if (!object) return []
    return kind.parse(object.data)
  } catch (error) {
    if (error instanceof MlopsError && !(error instanceof IntegrityError)) throw error
    throw new IntegrityError(`${name}@${version}: ${kind.what} in ${catalog.uri} is corrupt: ${(error as Error).message}`, {
      suggestion: kind.repair(name, version),
    })
  }
}

/**
 * Replaces the entries `update` gives for the current ones (a corrupt record counts as none, and is
 * replaced by a good one), by compare-and-swap: a concurrent writer's change is read again, not lost.
 */
export async function updateVersionRecord<T>(
  catalog: Catalog,
  kind: VersionRecord<T>,
  name: string,
  version: string,
  update: (current: T[]) => T[],
): Promise<T[]> {
  const key = catalog.key(name, version, kind.file)
  for (;;) {
    const current = await catalog.backend.read(key)
    let entries: T[] = []
    if (current) {
      try {
        entries = kind.parse(current.data)
      } catch {
        // A corrupt record is replaced by a good one.
      }
    }

    entries = update(entries)
    try {
      await catalog.backend.write(key, kind.format(entries), {
        ifGeneration: current?.stat.generation ?? '0',
        contentType: 'application/json',
      })
      return entries
    } catch (error) {
      if (!isPreconditionFailed(error)) throw error
    }
  }
}

/** A JSON object's list under `field`, or a plain Error saying why not. */
export function jsonList(data: Buffer, field: string): unknown[] {
  let value: unknown
  try {
    value = JSON.parse(data.toString('utf8'))
  } catch (error) {
    throw new Error(`not JSON (${(error as Error).message})`)
  }

  const list = (value as Record<string, unknown> | null)?.[field]
  if (!Array.isArray(list)) throw new Error(`no "${field}" list`)
  return list
}
