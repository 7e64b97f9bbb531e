/**
 * Where a version was published as an OCI image: <name>/<version>/images.json,
 * beside the version's immutable manifest, updated by compare-and-swap like an
 * alias. It is read back like any input: a record that is not a repository and
 * a sha256 digest is refused, never rendered into a pod spec.
 */
import {DIGEST, TAG, splitRepository} from '../util/oci-names.js'
import type {Catalog} from './catalog.js'
import {type VersionRecord, jsonList, readVersionRecord, updateVersionRecord} from './version-records.js'

export const PUBLICATIONS = 'images.json'

export interface Publication {
  /** REGISTRY/REPOSITORY, no tag. */
  repository: string
  /** The image manifest's digest. */
  digest: string
  tag: string
  publishedAt: string
  /** The sha256 of the reference set the image carries (reference.json), when the version had one at publish. */
  reference?: string
}

export function parsePublications(data: Buffer): Publication[] {
  return jsonList(data, 'images').map((entry, index) => {
    const {repository, digest, tag, publishedAt, reference} = (entry ?? {}) as Record<string, unknown>
    if (typeof repository !== 'string' || !splitRepository(repository))
      throw new Error(`images[${index}].repository is not REGISTRY/REPOSITORY`)
    if (typeof digest !== 'string' || !DIGEST.test(digest)) throw new Error(`images[${index}].digest is not sha256:<64 hex>`)
    if (typeof tag !== 'string' || !TAG.test(tag)) throw new Error(`images[${index}].tag is not an image tag`)
    if (reference !== undefined && (typeof reference !== 'string' || !/^[0-9a-f]{64}$/.test(reference)))
      throw new Error(`images[${index}].reference is not a hex SHA-256`)
    return {
      repository,
      digest,
      tag,
      publishedAt: typeof publishedAt === 'string' ? publishedAt.slice(0, 64) : '',
      ...(reference === undefined ? {} : {reference}),
    }
  })
}

const PUBLISHED: VersionRecord<Publication> = {
  file: PUBLICATIONS,
  what: 'the published images record',
  parse: parsePublications,
  format: images => Buffer.from(`${JSON.stringify({images}, null, 2)}\n`),
  repair: (name, version) => `publish it again: mlops model publish ${name}@${version}`,
}

export async function readPublications(catalog: Catalog, name: string, version: string): Promise<Publication[]> {
  return readVersionRecord(catalog, PUBLISHED, name, version)
}

/** Adds (or replaces) the record for a repository; concurrent publishes of other repositories are kept. */
export async function recordPublication(catalog: Catalog, name: string, version: string, publication: Publication): Promise<Publication[]> {
  return updateVersionRecord(catalog, PUBLISHED, name, version, images => [
    ...images.filter(image => image.repository !== publication.repository),
    publication,
  ])
}
