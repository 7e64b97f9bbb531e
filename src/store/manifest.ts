import type {OnnxInfo} from '../onnx/model-info.js'

export const MANIFEST_SCHEMA_VERSION = 1

/**
 * What a pushed model version is: written once, never changed, and carried
 * through every later step (render annotations, the compatibility guard,
 * status, the loader's summary).
 */
export interface ModelManifest {
  schemaVersion: number
  name: string
  version: string
  /** Object name of the model inside the version folder, e.g. model.onnx. */
  file: string
  format: 'onnx' | 'other'
  size: number
  sha256: string
  crc32c: string
  createdAt: string
  createdBy: string
  source: {
    file: string
    gitCommit?: string
    gitDirty?: boolean
  }
  metadata: Record<string, string>
  labels?: {
    file: string
    sha256: string
    size: number
    /** Class index → label. */
    values: Record<string, string>
  }
  onnx?: OnnxInfo
}

export class InvalidManifestError extends Error {}

/** A stored file's name inside its version folder: one path segment, never "." or "..", no separators. */
export const STORED_FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/
const VERSION_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/
const SHA256 = /^[0-9a-f]{64}$/

/**
 * Parses a stored manifest, checking the fields every consumer relies on.
 * Whatever is read back from a store is input like any flag: a file name that
 * is a path ("../x"), a size that is not a byte count or a manifest copied
 * from another version is refused, never acted on.
 */
export function parseManifest(data: Buffer, expected?: {name: string; version: string}): ModelManifest {
  let value: unknown
  try {
    value = JSON.parse(data.toString('utf8'))
  } catch (error) {
    throw new InvalidManifestError(`not JSON (${(error as Error).message})`)
  }

  const manifest = value as Partial<ModelManifest>
  for (const [field, type] of [
    ['name', 'string'],
    ['version', 'string'],
    ['file', 'string'],
    ['sha256', 'string'],
    ['size', 'number'],
  ] as const) {
    if (typeof manifest?.[field] !== type) throw new InvalidManifestError(`field "${field}" is missing or not a ${type}`)
  }

  if (!SHA256.test(manifest.sha256!)) throw new InvalidManifestError('field "sha256" is not a hex SHA-256')
  if (!STORED_FILE_NAME.test(manifest.file!))
    throw new InvalidManifestError(`field "file" is not a plain file name: ${JSON.stringify(manifest.file!.slice(0, 80))}`)
  if (!Number.isSafeInteger(manifest.size) || manifest.size! < 0) throw new InvalidManifestError('field "size" is not a byte count')
  if (expected && (manifest.name !== expected.name || manifest.version !== expected.version)) {
    throw new InvalidManifestError(
      `it describes ${JSON.stringify(`${manifest.name}@${manifest.version}`.slice(0, 140))}, not ${expected.name}@${expected.version}`,
    )
  }

  if (manifest.labels !== undefined) {
    const {labels} = manifest
    if (typeof labels !== 'object' || labels === null) throw new InvalidManifestError('field "labels" is not an object')
    if (typeof labels.file !== 'string' || !STORED_FILE_NAME.test(labels.file))
      throw new InvalidManifestError(`field "labels.file" is not a plain file name: ${JSON.stringify(String(labels.file).slice(0, 80))}`)
    if (typeof labels.sha256 !== 'string' || !SHA256.test(labels.sha256))
      throw new InvalidManifestError('field "labels.sha256" is not a hex SHA-256')
    if (!Number.isSafeInteger(labels.size) || labels.size < 0) throw new InvalidManifestError('field "labels.size" is not a byte count')
    if (labels.file === manifest.file || labels.file === 'manifest.json')
      throw new InvalidManifestError('field "labels.file" names another file of the version')
  }

  return manifest as ModelManifest
}

/** The version an alias object names, checked like a typed version (an alias must never lead out of its model's folder). */
export function parseAliasTarget(data: Buffer): string {
  let version: unknown
  try {
    version = (JSON.parse(data.toString('utf8')) as {version?: unknown}).version
  } catch (error) {
    throw new InvalidManifestError(`not JSON (${(error as Error).message})`)
  }

  if (typeof version !== 'string' || !VERSION_NAME.test(version))
    throw new InvalidManifestError(`it names no valid version: ${JSON.stringify(String(version).slice(0, 80))}`)
  return version
}

export function serializeManifest(manifest: ModelManifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`)
}
