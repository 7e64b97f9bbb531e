/**
 * Reference sets: rows from a file, run in-process through the installed onnxruntime (the engine
 * `mlops serve` uses, read the way it reads outputs), recorded beside a version in the store.
 */
import {mkdtemp, readFile, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {UsageError} from '../errors.js'
import {RowRefusedError, answerRows} from '../serve/answers.js'
import {loadModel, prepareModel, runtimeName, type ServedModel} from '../serve/model.js'
import type {ModelManifest} from '../store/manifest.js'
import type {ModelStore} from '../store/model-store.js'
import type {ModelRef} from '../store/names.js'
import {type ComputedReference, REFERENCE_MAX_BYTES, REFERENCE_MAX_ROWS, type ReferenceWrite, makeReference} from '../store/references.js'
import {formatBytes} from '../util/text.js'
import {parseRows} from './input.js'

/** A run of a model on rows: what a reference records, and the class of each probability column (classifiers). */
export interface ModelRun extends ComputedReference {
  /** Per column of a classifier's probabilities: its class, named through the labels when there are labels. */
  classes?: string[]
}

export interface ReferenceResult extends ReferenceWrite {
  name: string
  version: string
  ref: string
}

/** The rows of a reference file (JSON, JSON Lines or CSV with a header), refused beyond the limits. */
export async function readReferenceRows(file: string): Promise<number[][]> {
  const info = await stat(file).catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read the reference file ${file}: ${error.code ?? error.message}`)
  })
  if (!info.isFile()) throw new UsageError(`the reference file ${file} is not a regular file`)
  if (info.size > REFERENCE_MAX_BYTES)
    throw new UsageError(
      `the reference file ${file} is ${formatBytes(info.size)}; a reference set is at most ${formatBytes(REFERENCE_MAX_BYTES)}`,
      {
        suggestion: `keep a sample of at most ${REFERENCE_MAX_ROWS} rows`,
      },
    )
  const rows = parseRows(await readFile(file, 'utf8'), file)
  if (rows.length > REFERENCE_MAX_ROWS)
    throw new UsageError(`the reference file ${file} has ${rows.length} rows; a reference set is at most ${REFERENCE_MAX_ROWS} rows`, {
      suggestion: `keep a sample of at most ${REFERENCE_MAX_ROWS} rows`,
    })
  return rows
}

/**
 * Runs the model on the rows with the installed onnxruntime. A row the model refuses is a usage
 * error naming it (`source: row N`): nothing is recorded for rows the model cannot take.
 */
export async function computeReference(
  modelPath: string,
  labels: Record<string, string> | undefined,
  inputs: number[][],
  source: string,
): Promise<ModelRun> {
  const prepared = await prepareModel({modelPath, name: 'reference'})
  prepared.labels = labels
  const model = await loadModel(prepared)
  try {
    const outputs = await answerRows(model, inputs).catch((error: unknown) => {
      if (!(error instanceof RowRefusedError)) throw error
      throw new UsageError(`${source}: ${error.message}`, {
        suggestion: `give rows of the model's input (${model.input.name}: ${model.input.type}[${model.input.shape.map(d => d ?? '?').join(',')}])`,
      })
    })
    return {runtime: runtimeName(model), inputs, outputs, classes: classesOf(model, outputs[0]?.prediction)}
  } finally {
    await model.engine.close()
  }
}

/** The class of each probability column, as /predict/label names it; undefined for models without probabilities. */
function classesOf(model: ServedModel, firstPrediction: unknown): string[] | undefined {
  if (!model.probabilities || !Array.isArray(firstPrediction)) return undefined
  return firstPrediction.map((_, i) => {
    const label = model.classLabels?.[i] ?? i
    return model.labels?.[String(label)] ?? String(label)
  })
}

/**
 * Adds a reference set to a version that exists: the version is pulled (verified) into a
 * temporary folder, run on the rows, and the record stored beside it.
 */
export async function addReference(store: ModelStore, request: {ref: ModelRef; file: string; replace: boolean}): Promise<ReferenceResult> {
  const inputs = await readReferenceRows(request.file)
  const manifest = await store.resolve(request.ref)
  const computed = await runVersion(store, manifest, inputs, request.file)
  const written = await store.recordReference(manifest, makeReference(manifest, computed), {replace: request.replace})
  return {name: manifest.name, version: manifest.version, ref: `${manifest.name}@${manifest.version}`, ...written}
}

/** Pulls a version (verified) into a temporary folder and runs it on the rows there; the folder is removed after. */
export async function runVersion(store: ModelStore, manifest: ModelManifest, inputs: number[][], source: string): Promise<ModelRun> {
  if (manifest.format !== 'onnx')
    throw new UsageError(`${manifest.name}@${manifest.version} is not an ONNX model (${manifest.file}): it cannot be run with onnxruntime`)
  const dir = await mkdtemp(join(tmpdir(), 'mlops-run-'))
  try {
    const {path} = await store.pull({manifest, destination: join(dir, manifest.file)})
    return await computeReference(path, manifest.labels?.values, inputs, source)
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}
