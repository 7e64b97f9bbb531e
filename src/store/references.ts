/**
 * A version's reference set: input rows and the outputs the model gave for them when they were
 * recorded, with the onnxruntime that computed them. Stored as <name>/<version>/reference.json,
 * beside the version's immutable manifest (so one can be added to a version pushed without one),
 * replaced only on request, by compare-and-swap on its generation. The record carries the sha256
 * and size of its rows, and is read back like any input: a record whose rows do not hash to its
 * sha256, that names another version or model, or that is malformed is an integrity error.
 */
import {createHash} from 'node:crypto'

import {ConflictError, IntegrityError, MlopsError} from '../errors.js'
import {isPreconditionFailed} from './backend.js'
import type {Catalog} from './catalog.js'
import type {ModelManifest} from './manifest.js'
import {validateName} from './names.js'

export const REFERENCE = 'reference.json'
export const REFERENCE_SCHEMA_VERSION = 1
/** At most this many rows in a reference set, and this many bytes in the file they come from. */
export const REFERENCE_MAX_ROWS = 10_000
export const REFERENCE_MAX_BYTES = 8 * 1024 * 1024

/** What the model gave for one row: its label (classifiers) and its prediction (probabilities, or the raw outputs). */
export interface ReferenceOutput {
  label?: number | string
  prediction: unknown
}

/** What the rows and outputs are, without the rows themselves: what `model show` lists. */
export interface ReferenceSummary {
  /** Object name inside the version folder. */
  file: string
  rows: number
  /** The runtime that computed the outputs, e.g. "onnxruntime-node 1.22.0". */
  runtime: string
  /** SHA-256 (hex) of the canonical JSON of modelSha256, runtime, inputs and outputs. */
  sha256: string
  /** Bytes of that canonical JSON. */
  size: number
  computedAt: string
}

export interface ReferenceRecord extends Omit<ReferenceSummary, 'file'> {
  schemaVersion: number
  name: string
  version: string
  /** The model file the outputs were computed with. */
  modelSha256: string
  inputs: number[][]
  outputs: ReferenceOutput[]
}

/** Rows and what the model gave for them, before they are recorded for a version. */
export interface ComputedReference {
  runtime: string
  inputs: number[][]
  outputs: ReferenceOutput[]
}

export interface ReferenceWrite {
  reference: ReferenceSummary
  /** The same reference was there already (a repeated add): nothing was written. */
  unchanged: boolean
  /** The sha256 of the reference this one replaced. */
  replaced?: string
}

const SHA256 = /^[0-9a-f]{64}$/
const MAX_DEPTH = 8

/** The record of rows and the outputs computed for them, with the digest that is checked when it is read back. */
export function makeReference(manifest: Pick<ModelManifest, 'name' | 'version' | 'sha256'>, computed: ComputedReference): ReferenceRecord {
  const {sha256, size} = rowsDigest(manifest.sha256, computed.runtime, computed.inputs, computed.outputs)
  return {
    schemaVersion: REFERENCE_SCHEMA_VERSION,
    name: manifest.name,
    version: manifest.version,
    modelSha256: manifest.sha256,
    runtime: computed.runtime,
    computedAt: new Date().toISOString(),
    rows: computed.inputs.length,
    sha256,
    size,
    inputs: computed.inputs,
    outputs: computed.outputs,
  }
}

export function summarizeReference(record: ReferenceRecord): ReferenceSummary {
  const {rows, runtime, sha256, size, computedAt} = record
  return {file: REFERENCE, rows, runtime, sha256, size, computedAt}
}

/**
 * Parses a stored reference record for one version of one model file. Throws a plain Error saying
 * what is wrong (the caller names the object); a digest that does not match says "sha256".
 */
export function parseReference(data: Buffer, expected: {sha256: string; name?: string; version?: string}): ReferenceRecord {
  let value: unknown
  try {
    value = JSON.parse(data.toString('utf8'))
  } catch (error) {
    throw new Error(`not JSON (${(error as Error).message})`)
  }

  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object')
  const record = value as Partial<Record<keyof ReferenceRecord, unknown>>
  if (record.schemaVersion !== REFERENCE_SCHEMA_VERSION) throw new Error(`schemaVersion is not ${REFERENCE_SCHEMA_VERSION}`)
  if (typeof record.name !== 'string' || typeof record.version !== 'string' || !isName(record.name) || !isName(record.version))
    throw new Error('name and version are not a model name and a version')
  if (
    (expected.name !== undefined && record.name !== expected.name) ||
    (expected.version !== undefined && record.version !== expected.version)
  )
    throw new Error(
      `it describes ${JSON.stringify(`${record.name}@${record.version}`.slice(0, 140))}, not ${expected.name ?? record.name}@${expected.version ?? record.version}`,
    )
  if (record.modelSha256 !== expected.sha256)
    throw new Error(`it was computed for another model file (modelSha256 is not ${expected.sha256})`)
  if (typeof record.runtime !== 'string' || !/^[\w.@/+-]+( [\w.+-]+)?$/.test(record.runtime) || record.runtime.length > 80)
    throw new Error('runtime is not a runtime name and version')
  if (typeof record.sha256 !== 'string' || !SHA256.test(record.sha256)) throw new Error('sha256 is not a hex SHA-256')
  if (!Number.isSafeInteger(record.size) || (record.size as number) < 0) throw new Error('size is not a byte count')
  const computedAt = typeof record.computedAt === 'string' ? record.computedAt.slice(0, 64) : ''
  const {inputs, outputs} = record
  if (!Array.isArray(inputs) || inputs.length === 0 || inputs.length > REFERENCE_MAX_ROWS)
    throw new Error(`inputs is not a list of 1 to ${REFERENCE_MAX_ROWS} rows`)
  if (record.rows !== inputs.length) throw new Error(`rows is not the number of inputs (${inputs.length})`)
  inputs.forEach((row: unknown, index) => {
    if (!Array.isArray(row) || row.length === 0 || !row.every(v => typeof v === 'number' && Number.isFinite(v)))
      throw new Error(`inputs[${index}] is not a list of numbers`)
  })
  if (!Array.isArray(outputs) || outputs.length !== inputs.length) throw new Error(`outputs is not a list of ${inputs.length} results`)
  outputs.forEach((output: unknown, index) => {
    const {label, prediction, ...rest} = (output ?? {}) as Record<string, unknown>
    if (typeof output !== 'object' || output === null || Object.keys(rest).length > 0)
      throw new Error(`outputs[${index}] is not {"label", "prediction"}`)
    if (label !== undefined && typeof label !== 'string' && !(typeof label === 'number' && Number.isFinite(label)))
      throw new Error(`outputs[${index}].label is not a label`)
    if (!isTensorValue(prediction, 0)) throw new Error(`outputs[${index}].prediction is not a tensor value`)
  })

  const digest = rowsDigest(expected.sha256, record.runtime, inputs as number[][], outputs as ReferenceOutput[])
  if (digest.sha256 !== record.sha256 || digest.size !== record.size)
    throw new Error(
      `its rows have sha256 ${digest.sha256} (${digest.size} bytes), not the recorded ${record.sha256} (${String(record.size)} bytes)`,
    )
  return {...(record as ReferenceRecord), computedAt}
}

/** The version's reference set, verified; undefined when it has none. */
export async function readReference(catalog: Catalog, manifest: ModelManifest): Promise<ReferenceRecord | undefined> {
  return (await readVerified(catalog, manifest))?.record
}

/** The stored bytes of the version's reference set, once they are verified (what a loader writes for serve); undefined when it has none. */
export async function readReferenceBytes(catalog: Catalog, manifest: ModelManifest): Promise<Buffer | undefined> {
  return (await readVerified(catalog, manifest))?.data
}

async function readVerified(catalog: Catalog, manifest: ModelManifest): Promise<{data: Buffer; record: ReferenceRecord} | undefined> {
  const {name, version} = manifest
  const object = await catalog.backend.read(catalog.key(name, version, REFERENCE))
  if (!object) return undefined
  try {
    return {data: object.data, record: parseReference(object.data, manifest)}
  } catch (error) {
    if (error instanceof MlopsError) throw error
    throw corrupt(catalog, manifest, error as Error)
  }
}

/**
 * Stores a version's reference set. The same rows and outputs again change nothing; a different
 * reference there already is a conflict unless `replace`. A corrupt one is an integrity error
 * unless `replace`.
 */
export async function recordReference(
  catalog: Catalog,
  manifest: ModelManifest,
  record: ReferenceRecord,
  options: {replace: boolean},
): Promise<ReferenceWrite> {
  const {name, version} = manifest
  const key = catalog.key(name, version, REFERENCE)
  for (;;) {
    const current = await catalog.backend.read(key)
    let existing: ReferenceRecord | undefined
    if (current) {
      try {
        existing = parseReference(current.data, manifest)
      } catch (error) {
        if (!options.replace) throw corrupt(catalog, manifest, error as Error)
      }

      if (existing?.sha256 === record.sha256) return {reference: summarizeReference(existing), unchanged: true}
      if (existing && !options.replace) {
        throw new ConflictError(
          `${name}@${version} has a different reference set (${existing.rows} rows, ${existing.runtime}, sha256:${existing.sha256.slice(0, 12)})`,
          {suggestion: 'versions keep their reference; to replace it, add it again with --replace'},
        )
      }
    }

    try {
      await catalog.backend.write(key, Buffer.from(`${JSON.stringify(record)}\n`), {
        ifGeneration: current?.stat.generation ?? '0',
        contentType: 'application/json',
      })
      return {reference: summarizeReference(record), unchanged: false, ...(current ? {replaced: existing?.sha256 ?? 'corrupt'} : {})}
    } catch (error) {
      if (!isPreconditionFailed(error)) throw error
    }
  }
}

function corrupt(catalog: Catalog, manifest: ModelManifest, error: Error): IntegrityError {
  const {name, version} = manifest
  return new IntegrityError(
    `${name}@${version}: the reference set ${catalog.uri}/${catalog.key(name, version, REFERENCE)} is corrupt: ${error.message}`,
    {
      suggestion: `add it again: mlops model reference add ${name}@${version} FILE --replace`,
    },
  )
}

/** What the record's sha256 covers: the model it ran, the runtime, the rows and their outputs, as canonical JSON. */
function rowsDigest(modelSha256: string, runtime: string, inputs: number[][], outputs: ReferenceOutput[]): {sha256: string; size: number} {
  const canonical = Buffer.from(JSON.stringify({modelSha256, runtime, inputs, outputs}))
  return {sha256: createHash('sha256').update(canonical).digest('hex'), size: canonical.length}
}

/** Numbers, strings and booleans, nested in lists or objects of names (several outputs), a few levels deep. */
function isTensorValue(value: unknown, depth: number): boolean {
  if (typeof value === 'number') return Number.isFinite(value)
  if (typeof value === 'string' || typeof value === 'boolean') return true
  if (depth >= MAX_DEPTH || typeof value !== 'object' || value === null) return false
  return Array.isArray(value) ? value.every(v => isTensorValue(v, depth + 1)) : Object.values(value).every(v => isTensorValue(v, depth + 1))
}

function isName(value: string): boolean {
  try {
    validateName('version', value)
    return true
  } catch {
    return false
  }
}
