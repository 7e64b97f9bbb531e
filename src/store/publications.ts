/**
 * Where a version was published as an OCI image: <name>/<version>/images.json,
 * beside the version's immutable manifest, updated by compare-and-swap like an
 * alias. It is read back like any input: a record that is not a repository and
 * a sha256 digest is refused, never rendered into a pod spec.
 */
import {IntegrityError, MlopsError} from '../errors.js'
import {DIGEST, TAG, splitRepository} from '../util/oci-names.js'
import {isPreconditionFailed} from './backend.js'
import type {Catalog} from './catalog.js'

export const PUBLICATIONS = 'images.json'

export interface Publication {
  /** REGISTRY/REPOSITORY, no tag. */
  repository: string
  /** The image manifest's digest. */
  digest: string
  tag: string
  publishedAt: string
}

export function parsePublications(data: Buffer): Publication[] {
  let value: unknown
  try {
    value = JSON.parse(data.toString('utf8'))
  } catch (error) {
    throw new Error(`not JSON (${(error as Error).message})`)
  }

  const images = (value as {images?: unknown})?.images
  if (!Array.isArray(images)) throw new Error('no "images" list')
  return images.map((entry, index) => {
    const {repository, digest, tag, publishedAt} = (entry ?? {}) as Record<string, unknown>
    if (typeof repository !== 'string' || !splitRepository(repository))
      throw new Error(`images[${index}].repository is not REGISTRY/REPOSITORY`)
    if (typeof digest !== 'string' || !DIGEST.test(digest)) throw new Error(`images[${index}].digest is not sha256:<64 hex>`)
    if (typeof tag !== 'string' || !TAG.test(tag)) throw new Error(`images[${index}].tag is not an image tag`)
    return {repository, digest, tag, publishedAt: typeof publishedAt === 'string' ? publishedAt.slice(0, 64) : ''}
  })
}

export async function readPublications(catalog: Catalog, name: string, version: string): Promise<Publication[]> {
  try {
    const object = await catalog.backend.read(catalog.key(name, version, PUBLICATIONS))
    if (!object) return []
    return parsePublications(object.data)
  } catch (error) {
    if (error instanceof MlopsError && !(error instanceof IntegrityError)) throw error
    throw new IntegrityError(`${name}@${version}: the published images record in ${catalog.uri} is corrupt: ${(error as Error).message}`, {
      suggestion: `publish it again: mlops model publish ${name}@${version}`,
    })
  }
}

/** Adds (or replaces) the record for a repository; concurrent publishes of other repositories are kept. */
export async function recordPublication(catalog: Catalog, name: string, version: string, publication: Publication): Promise<Publication[]> {
  const key = catalog.key(name, version, PUBLICATIONS)
  for (;;) {
    const current = await catalog.backend.read(key)
    let images: Publication[] = []
    if (current) {
      try {
        images = parsePublications(current.data)
      } catch {
        // A corrupt record is replaced by a good one.
      }
    }

    images = [...images.filter(image => image.repository !== publication.repository), publication]
    try {
      await catalog.backend.write(key, Buffer.from(`${JSON.stringify({images}, null, 2)}\n`), {
        ifGeneration: current?.stat.generation ?? '0',
      })
      return images
    } catch (error) {
      if (!isPreconditionFailed(error)) throw error
    }
  }
}
