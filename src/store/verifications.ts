/**
 * Which API images a version was verified on: <name>/<version>/verified.json, one entry per image
 * (by its ID, the digest of its config: the same image wherever it is tagged or pushed), written by
 * `mlops image check` with what it found: ok, or why not. Together, over the versions, they are the
 * compatibility matrix ("which server image supports which model") that the pattern needs and that
 * nobody has to keep by hand. Read back as strictly as any input.
 */
import {quoteServerText} from '../util/text.js'
import {DIGEST} from '../util/oci-names.js'
import {IntegrityError} from '../errors.js'
import {ALIASES, type Catalog, MANIFEST, mapLimit} from './catalog.js'
import {compareVersions} from './names.js'
import {type VersionRecord, jsonList, readVersionRecord, updateVersionRecord} from './version-records.js'

export const VERIFICATIONS = 'verified.json'
/** Entries kept per version: the newest, by checkedAt. */
export const MAX_VERIFICATIONS = 64

/** How the version's answers compared with its reference set in the image. */
export interface ParitySummary {
  /** The reference set's sha256: a later reference (replaced) makes this entry about another one. */
  sha256: string
  rows: number
  maxDelta: number
  tolerance: number
}

export interface Verification {
  /** The API image as it was named when checked (REPOSITORY:TAG, or a digest reference). */
  image: string
  /** The image's ID (sha256 of its config). */
  imageId: string
  /** Registry digests the engine knew for it (REPOSITORY@sha256:…): how a deploy by digest finds its entry. */
  repoDigests: string[]
  /** The ONNX Runtime the image carries, e.g. "onnxruntime-node 1.30.0". */
  runtime: string
  ok: boolean
  /** Why not, in the check's words (ok: false). */
  reason?: string
  /** Set when the version has a reference set and the image answered it. */
  parity?: ParitySummary
  checkedAt: string
}

const IMAGE_REF = /^[A-Za-z0-9][\w./:@-]{0,299}$/
const REPO_DIGEST = /^[a-z0-9][\w./:-]{0,254}@sha256:[0-9a-f]{64}$/
const RUNTIME = /^[\w.@/+-]{1,60}( [\w.+-]{1,40})?$/
const SHA256_HEX = /^[0-9a-f]{64}$/

export function parseVerifications(data: Buffer): Verification[] {
  return jsonList(data, 'verified').map((entry, index) => {
    const at = `verified[${index}]`
    if (typeof entry !== 'object' || entry === null) throw new Error(`${at} is not an object`)
    const {image, imageId, repoDigests, runtime, ok, reason, parity, checkedAt} = entry as Record<string, unknown>
    if (typeof image !== 'string' || !IMAGE_REF.test(image)) throw new Error(`${at}.image is not an image reference`)
    if (typeof imageId !== 'string' || !DIGEST.test(imageId)) throw new Error(`${at}.imageId is not sha256:<64 hex>`)
    if (!Array.isArray(repoDigests) || repoDigests.length > 16 || !repoDigests.every(d => typeof d === 'string' && REPO_DIGEST.test(d)))
      throw new Error(`${at}.repoDigests is not a list of REPOSITORY@sha256:<64 hex>`)
    if (typeof runtime !== 'string' || !RUNTIME.test(runtime)) throw new Error(`${at}.runtime is not a runtime name and version`)
    if (typeof ok !== 'boolean') throw new Error(`${at}.ok is not true or false`)
    if (reason !== undefined && typeof reason !== 'string') throw new Error(`${at}.reason is not text`)
    if (typeof checkedAt !== 'string' || Number.isNaN(Date.parse(checkedAt))) throw new Error(`${at}.checkedAt is not a time`)
    const verification: Verification = {
      image,
      imageId,
      repoDigests: repoDigests as string[],
      runtime,
      ok,
      checkedAt: checkedAt.slice(0, 64),
    }
    if (reason !== undefined) verification.reason = quoteServerText(reason, 600)
    if (parity !== undefined) verification.parity = parseParity(parity, `${at}.parity`)
    return verification
  })
}

function parseParity(value: unknown, at: string): ParitySummary {
  const {sha256, rows, maxDelta, tolerance} = (value ?? {}) as Record<string, unknown>
  if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) throw new Error(`${at}.sha256 is not a hex SHA-256`)
  if (!Number.isSafeInteger(rows) || (rows as number) < 1) throw new Error(`${at}.rows is not a row count`)
  for (const [field, number] of [
    ['maxDelta', maxDelta],
    ['tolerance', tolerance],
  ] as const)
    if (typeof number !== 'number' || !Number.isFinite(number) || number < 0) throw new Error(`${at}.${field} is not a number of 0 or more`)
  return {sha256, rows: rows as number, maxDelta: maxDelta as number, tolerance: tolerance as number}
}

const VERIFIED: VersionRecord<Verification> = {
  file: VERIFICATIONS,
  what: 'the record of the images it was verified on',
  parse: parseVerifications,
  format: verified => Buffer.from(`${JSON.stringify({verified}, null, 2)}\n`),
  repair: (name, version) => `check it again: mlops image check --model ${name}@${version} --image IMAGE (the record is rewritten)`,
}

export async function readVerifications(catalog: Catalog, name: string, version: string): Promise<Verification[]> {
  return readVersionRecord(catalog, VERIFIED, name, version)
}

/** Adds (or replaces) the entry for an image; entries for other images, written concurrently, are kept. */
export async function recordVerification(
  catalog: Catalog,
  name: string,
  version: string,
  verification: Verification,
): Promise<Verification[]> {
  return updateVersionRecord(catalog, VERIFIED, name, version, entries =>
    [...entries.filter(entry => entry.imageId !== verification.imageId), verification]
      .sort((a, b) => a.checkedAt.localeCompare(b.checkedAt))
      .slice(-MAX_VERIFICATIONS),
  )
}

/** The entry that speaks for an image: by its ID, or by a registry digest it is known by. */
export function verificationFor(entries: Verification[], image: {id?: string; digest?: string}): Verification | undefined {
  return entries.findLast(
    entry =>
      (image.id !== undefined && entry.imageId === image.id) ||
      (image.digest !== undefined && entry.repoDigests.some(d => d.endsWith(`@${image.digest}`))),
  )
}

/** One version's row of the matrix: its entries, or why its record cannot be read. */
export interface VersionVerifications {
  name: string
  version: string
  verified: Verification[]
  problem?: string
}

/**
 * Every version of every model (or of one) with what it was verified on: one listing of the store
 * and one read per record, whatever the number of versions.
 */
export async function readAllVerifications(catalog: Catalog, name?: string): Promise<VersionVerifications[]> {
  const {keys} = await catalog.backend.list(name ? `${name}/` : '')
  const versions = new Map<string, {name: string; version: string; record: boolean}>()
  for (const key of keys) {
    const [model, version, file, ...rest] = key.split('/')
    if (rest.length > 0 || file === undefined || version === ALIASES || (name !== undefined && model !== name)) continue
    if (file !== MANIFEST && file !== VERIFICATIONS) continue
    const entry = versions.get(`${model}/${version}`) ?? {name: model, version, record: false}
    if (file === VERIFICATIONS) entry.record = true
    versions.set(`${model}/${version}`, entry)
  }

  const rows = await mapLimit([...versions.values()], 16, async ({name: model, version, record}): Promise<VersionVerifications> => {
    if (!record) return {name: model, version, verified: []}
    try {
      return {name: model, version, verified: await readVerifications(catalog, model, version)}
    } catch (error) {
      if (!(error instanceof IntegrityError)) throw error
      return {name: model, version, verified: [], problem: error.message}
    }
  })
  return rows.sort((a, b) => a.name.localeCompare(b.name) || compareVersions(a.version, b.version))
}
