import {UsageError} from '../errors.js'
import type {ObjectStat} from './backend.js'

/**
 * What a GCS JSON API answers, read as strictly as a flag: listings and object metadata are
 * checked before use, and anything else is the server's fault, said so (exit 2, not a stack trace).
 */
export const NOT_GCS = {suggestion: 'check --gcs-endpoint / MLOPS_GCS_ENDPOINT / store.endpoint'}

/**
 * One page of an object listing as the JSON API returns it. Every name must
 * be under the prefix asked for (a name outside it would become a key that
 * walks out of the store); anything else is the server's fault, said so.
 */
export function parseListing(body: Buffer, prefix: string): {names: string[]; prefixes: string[]; nextPageToken?: string} {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    throw new UsageError('the storage endpoint answered a listing with something that is not JSON: it is not a GCS JSON API', NOT_GCS)
  }
  const {items = [], prefixes = [], nextPageToken} = (parsed ?? {}) as {items?: unknown; prefixes?: unknown; nextPageToken?: unknown}
  const names = Array.isArray(items) ? items.map(item => (item as {name?: unknown})?.name) : undefined
  // A `.` or `..` segment would make a key that walks out of the store once joined to a path.
  const valid = (list: unknown[] | undefined): list is string[] =>
    Array.isArray(list) &&
    list.every(name => typeof name === 'string' && name.startsWith(prefix) && !name.split('/').some(part => part === '.' || part === '..'))
  if (!valid(names) || !valid(prefixes as unknown[]) || (nextPageToken !== undefined && typeof nextPageToken !== 'string'))
    throw new UsageError(
      `the storage endpoint answered a listing of ${prefix || 'the bucket'} with names outside it, with . or .. segments, or not strings`,
      NOT_GCS,
    )
  return {names, prefixes: prefixes as string[], nextPageToken: nextPageToken}
}

/** An object's metadata as the JSON API returns it; anything else is the server's fault, said so. */
export function parseMetadata(body: Buffer): {size?: number | string; generation?: number | string; crc32c?: string} {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    throw new UsageError(
      'the storage endpoint answered an object lookup with something that is not JSON: it is not a GCS JSON API',
      NOT_GCS,
    )
  }
  const metadata = (parsed ?? {}) as {size?: unknown; generation?: unknown; crc32c?: unknown}
  const size = Number(metadata.size)
  const generation = String(metadata.generation ?? '')
  if (
    !Number.isSafeInteger(size) ||
    size < 0 ||
    !/^\d{1,20}$/.test(generation) ||
    (metadata.crc32c !== undefined && typeof metadata.crc32c !== 'string')
  )
    throw new UsageError(
      'the storage endpoint answered an object lookup with metadata that is not a GCS object (size, generation)',
      NOT_GCS,
    )
  return {size, generation, crc32c: metadata.crc32c}
}

export function toStat(metadata: {size?: number | string; generation?: number | string; crc32c?: string}): ObjectStat {
  return {size: Number(metadata.size ?? 0), generation: String(metadata.generation), crc32c: metadata.crc32c}
}
