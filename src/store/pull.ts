import {lstat, stat} from 'node:fs/promises'
import {join} from 'node:path'

import {IntegrityError, NotFoundError, UsageError} from '../errors.js'
import type {Catalog} from './catalog.js'
import type {ModelManifest} from './manifest.js'
import {type ModelRef, formatRef} from './names.js'
import {REFERENCE, readReferenceBytes} from './references.js'
import {type TransferTuning, downloadVerified, existingSha256} from './transfer.js'
import {writeFileAtomic} from '../util/fs-atomic.js'

/** A ref to resolve, or a manifest already resolved (a deploy's): then the store is not asked for it again. */
export type PullRequest = ({ref: ModelRef} | {manifest: ModelManifest}) & {
  destination: string
  labelsDestination?: string
  /** Also the version's reference set (verified), written whole through a temporary file. */
  referenceDestination?: string
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
  referencePath?: string
}

/** Resolves, downloads beside the destination, verifies size, sha256 and crc32c, then renames into place. */
export async function pullVersion(catalog: Catalog, tuning: TransferTuning, request: PullRequest): Promise<PullResult> {
  const started = Date.now()
  const manifest = 'manifest' in request ? request.manifest : await catalog.resolve(request.ref)
  request.onResolved?.(manifest)
  const {name, version} = manifest
  const label = `${name}@${version}`
  const destination = await intoFolder(request.destination, manifest.file)
  const result: PullResult = {
    ref: 'manifest' in request ? formatRef({name, ref: version}) : formatRef(request.ref),
    name,
    version,
    sha256: manifest.sha256,
    bytes: 0,
    seconds: 0,
    skipped: false,
    path: destination,
  }

  if ((await existingSha256(destination, manifest.size)) === manifest.sha256) {
    result.skipped = true
  } else {
    const key = catalog.key(name, version, manifest.file)
    const object = await catalog.backend.stat(key)
    if (!object)
      throw new IntegrityError(`${label}: the manifest exists but the model object ${manifest.file} is missing from ${catalog.uri}`)
    if (object.crc32c && manifest.crc32c && object.crc32c !== manifest.crc32c) {
      throw new IntegrityError(
        `${label}: the stored object has crc32c ${object.crc32c}, the manifest says ${manifest.crc32c}; the stored object is corrupt`,
        {
          suggestion: 'the destination was left untouched; push the model again as a new version',
        },
      )
    }

    await downloadVerified({
      backend: catalog.backend,
      key,
      stat: object,
      destination,
      expected: manifest,
      label,
      tuning,
      onProgress: request.onProgress,
    })
    result.bytes = manifest.size
  }

  if (request.labelsDestination) {
    if (!manifest.labels) throw new NotFoundError(`${label} has no labels`, {suggestion: 'push it with --labels, or drop --labels-to'})
    const labelsKey = catalog.key(name, version, manifest.labels.file)
    const labelsDestination = await intoFolder(request.labelsDestination, manifest.labels.file)
    if ((await existingSha256(labelsDestination, manifest.labels.size)) !== manifest.labels.sha256) {
      const object = await catalog.backend.stat(labelsKey)
      if (!object) throw new IntegrityError(`${label}: the labels object is missing from ${catalog.uri}`)
      await downloadVerified({
        backend: catalog.backend,
        key: labelsKey,
        stat: object,
        destination: labelsDestination,
        expected: manifest.labels,
        label: `${label} labels`,
        tuning,
      })
    }

    result.labelsPath = labelsDestination
  }

  if (request.referenceDestination) {
    const reference = await readReferenceBytes(catalog, manifest)
    if (!reference)
      throw new NotFoundError(`${label} has no reference set`, {
        suggestion: `add one (mlops model reference add ${label} FILE), or drop --reference-to`,
      })
    const referenceDestination = await intoFolder(request.referenceDestination, REFERENCE)
    await writeFileAtomic(referenceDestination, async file => {
      await file.writeFile(reference)
    })
    result.referencePath = referenceDestination
  }

  result.seconds = (Date.now() - started) / 1000
  return result
}

/**
 * A destination that is an existing folder, or ends in "/", receives the file under its stored
 * name. The file itself must be absent or a regular file: the rename into place would replace a
 * device node (/dev/null), a pipe or a symbolic link with a regular file.
 */
async function intoFolder(destination: string, fileName: string): Promise<string> {
  const info = await stat(destination).catch(() => undefined)
  const path = /[/\\]$/.test(destination) || info?.isDirectory() ? join(destination, fileName) : destination
  const own = await lstat(path).catch(() => undefined)
  if (own?.isSymbolicLink())
    throw new UsageError(`${path} is a symbolic link; mlops model pull writes only to a regular file or a new path`, {
      suggestion: 'pass the path the link points to, or a new file name',
    })
  if (own && !own.isFile())
    throw new UsageError(
      `${path} is not a regular file (a device, pipe or socket); mlops model pull writes only to a regular file or a new path`,
      {
        suggestion: 'pass a file path, or a folder to receive the file under its stored name',
      },
    )
  return path
}
