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

/** Parses a stored manifest, checking the fields every consumer relies on. */
export function parseManifest(data: Buffer): ModelManifest {
  let value: unknown
  try {
    value = JSON.parse(data.toString('utf8'))
  } catch (error) {
    throw new InvalidManifestError(`not JSON (${(error as Error).message})`)
  }

  const manifest = value as Partial<ModelManifest>
  for (const [field, type] of [['name', 'string'], ['version', 'string'], ['file', 'string'], ['sha256', 'string'], ['size', 'number']] as const) {
    if (typeof manifest?.[field] !== type) throw new InvalidManifestError(`field "${field}" is missing or not a ${type}`)
  }

  if (!/^[0-9a-f]{64}$/.test(manifest.sha256!)) throw new InvalidManifestError('field "sha256" is not a hex SHA-256')
  return manifest as ModelManifest
}

export function serializeManifest(manifest: ModelManifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`)
}
