import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'

import {IncompatibleError, IntegrityError, NotFoundError, PermissionError, UsageError, errorMessage} from '../errors.js'
import {InvalidOnnxError, type OnnxInfo, readOnnxInfoFromBuffer} from '../onnx/model-info.js'
import {type ZipMapInfo, exposeZipMapInputs} from '../onnx/zipmap.js'
import {labelsMismatch, readLabels} from '../store/model-file.js'
import type {ReferenceRecord} from '../store/references.js'
import {Batcher} from './batcher.js'
import {readReferenceFile} from './parity.js'
import {Engine, EngineLoadError, type WireTensor} from './engine.js'
import {BadRequestError, type Dim, type TensorSpec, type TypedArray, isSupportedInputType, tensorRows} from './tensors.js'

/**
 * onnxruntime failed on an input that passed validation (it fits the model's signature): the
 * model's failure, not the client's, so a 500 (deploy --canary's error-rate gate counts 5xx).
 */
export class InferenceError extends Error {
  readonly statusCode = 500
}

/** Rows per merged run; a larger request runs on its own. */
const MAX_BATCH_ROWS = 256

/** ONNX element type names (as our reader gives them) → onnxruntime's. */
const ORT_TYPES: Record<string, string> = {
  float: 'float32',
  double: 'float64',
  int64: 'int64',
  int32: 'int32',
  int16: 'int16',
  int8: 'int8',
  uint8: 'uint8',
  uint16: 'uint16',
  string: 'string',
  bool: 'bool',
  float16: 'float16',
}

export interface ModelSource {
  modelPath: string
  labelsPath?: string
  /** Name for metrics and the inference protocol (default: the file name without extension). */
  name: string
  version?: string
  /** One sample input row for /metadata, /predict/test and the warm-up (default: zeros). */
  sample?: unknown
  /**
   * Which label a classifier answers: `output`, the model's own label output when it has one
   * (the default), or `argmax`, the class of the highest probability, as the original model-load
   * server did. They differ where a model's label is not its top probability (an SVC's Platt scaling).
   */
  labelFrom?: 'argmax' | 'output'
  /** The sha256 the file must have (a read-only image volume is verified too: fail closed). */
  expectedSha256?: string
  /** The version's reference set: answered at warm-up, every answer within the tolerance of the recorded one. */
  referencePath?: string
  referenceTolerance?: number
}

/** A model file checked and prepared, before onnxruntime has loaded it. */
export interface PreparedModel {
  source: ModelSource
  bytes: Buffer
  sha256: string
  info: OnnxInfo
  zipMaps: ZipMapInfo[]
  labels?: Record<string, string>
  reference?: ReferenceRecord
}

export type ModelKind = 'classifier' | 'regressor' | 'other'

export interface ServedModel {
  name: string
  version?: string
  sha256: string
  info: OnnxInfo
  kind: ModelKind
  input: TensorSpec
  /** Tensor outputs (a ZipMap's sequence of maps is replaced by its probabilities tensor). */
  outputs: TensorSpec[]
  /** The output holding class probabilities or scores, for classifiers. */
  probabilities?: string
  /** The output holding predicted labels (class ids or names). */
  labelOutput?: string
  labelFrom: 'argmax' | 'output'
  /** Class of each probability column. */
  classLabels?: Array<number | string>
  labels?: Record<string, string>
  sample: unknown[]
  engine: Engine
  /** Present when every sample has a fixed shape and every output is batch-major. */
  batcher?: Batcher
}

/**
 * Reads and checks a model file: exists, readable, a valid ONNX protobuf
 * with one numeric tensor input. Fails with the documented exit codes, so a
 * server never starts on a missing or broken model (there is no fallback).
 */
export async function prepareModel(source: ModelSource): Promise<PreparedModel> {
  const bytes = await readFile(source.modelPath).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT')
      throw new NotFoundError(`model file ${source.modelPath} does not exist`, {
        suggestion: "the loader writes it; check the MODEL_FILEPATH / --model path and the loader's logs",
      })
    if (error.code === 'EACCES') throw new PermissionError(`model file ${source.modelPath} is not readable`)
    if (error.code === 'EISDIR') throw new UsageError(`${source.modelPath} is a folder, not a model file`)
    throw error
  })
  const sha256 = createHash('sha256').update(bytes).digest('hex')
  if (source.expectedSha256 !== undefined && sha256 !== source.expectedSha256) {
    throw new IntegrityError(
      `model file ${source.modelPath} has sha256 ${sha256}, not the pinned ${source.expectedSha256}: refusing to serve it`,
      {
        suggestion: 'the model image or volume does not hold the version deployed; publish it again (mlops model publish) and redeploy',
      },
    )
  }

  let info: OnnxInfo
  try {
    info = readOnnxInfoFromBuffer(bytes)
  } catch (error) {
    if (error instanceof InvalidOnnxError) throw new IntegrityError(`${source.modelPath}: ${error.message}`)
    throw error
  }

  if (info.inputs.length !== 1) {
    throw new IncompatibleError(
      `${source.modelPath} has ${info.inputs.length} inputs (${info.inputs.map(i => i.name).join(', ')}); mlops serve takes models with one input`,
    )
  }

  const {model, zipMaps} = exposeZipMapInputs(bytes)
  const labels = source.labelsPath ? await readLabels(source.labelsPath) : undefined
  const reference = source.referencePath
    ? await readReferenceFile(source.referencePath, {
        sha256,
        name: source.version === undefined ? undefined : source.name,
        version: source.version,
      })
    : undefined
  return {source, bytes: model, sha256, info, zipMaps, labels, reference}
}

/**
 * prepareModel's checks, without keeping the model: what the primary of several workers needs
 * (it serves nothing; each worker reads the model itself).
 */
export async function checkModel(source: ModelSource): Promise<{name: string; sha256: string}> {
  const {sha256} = await prepareModel(source)
  return {name: source.name, sha256}
}

/** The runtime that answers, as a reference set records it: "onnxruntime-node 1.30.0". */
export function runtimeName(model: Pick<ServedModel, 'engine'>): string {
  return `onnxruntime-node ${model.engine.runtime}`
}

/** Starts onnxruntime on its own thread with the model, and works out how to read the model's outputs. */
export async function loadModel(prepared: PreparedModel, options: {intraOpThreads?: number} = {}): Promise<ServedModel> {
  let engine: Engine
  try {
    engine = await Engine.start(prepared.bytes, options)
  } catch (error) {
    const runtime = error instanceof EngineLoadError ? `onnxruntime ${error.runtime}` : 'onnxruntime'
    throw new IncompatibleError(`${runtime} cannot load ${prepared.source.modelPath}: ${errorMessage(error).split('\n')[0]}`, {
      suggestion: `the model declares IR ${prepared.info.irVersion}, opsets ${opsetList(prepared.info)}; export it for an older opset or use a newer runtime image`,
    })
  }

  const {info, zipMaps} = prepared
  const [inputInfo] = info.inputs
  const input: TensorSpec = {
    name: inputInfo.name,
    type: ORT_TYPES[inputInfo.elemType ?? ''] ?? inputInfo.elemType ?? 'unknown',
    shape: dims(inputInfo.shape),
  }
  if (inputInfo.kind !== 'tensor' || !isSupportedInputType(input.type)) {
    throw new IncompatibleError(`input ${input.name} is ${inputInfo.type}; mlops serve takes numeric tensor inputs`)
  }

  const mapOutputs = new Set(zipMaps.map(z => z.mapOutput))
  const outputs: TensorSpec[] = []
  for (const output of info.outputs) {
    if (output.kind === 'tensor')
      outputs.push({name: output.name, type: ORT_TYPES[output.elemType ?? ''] ?? 'unknown', shape: dims(output.shape)})
    const zipMap = zipMaps.find(z => z.mapOutput === output.name)
    if (zipMap) outputs.push({name: zipMap.tensor, type: 'float32', shape: [null, zipMap.classLabels.length || null]})
  }

  const served: ServedModel = {
    name: prepared.source.name,
    version: prepared.source.version,
    sha256: prepared.sha256,
    info,
    input,
    outputs,
    labels: prepared.labels,
    engine,
    kind: 'other',
    sample: [],
    labelFrom: prepared.source.labelFrom ?? 'output',
  }
  classify(served, zipMaps, mapOutputs)
  if (served.labelFrom === 'argmax' && !served.probabilities) {
    await engine.close()
    throw new UsageError(
      `--label-from argmax needs class probabilities, and ${prepared.source.modelPath} has none (a ${served.kind} model)`,
      {suggestion: 'drop --label-from (MLOPS_LABEL_FROM)'},
    )
  }
  if (served.kind === 'classifier' && served.labels) {
    const probabilities = served.outputs.find(o => o.name === served.probabilities)
    const classes = served.classLabels?.length || (probabilities?.shape.at(-1) ?? undefined)
    const mismatch = classes ? labelsMismatch(served.labels, classes) : undefined
    if (mismatch) {
      await engine.close()
      throw new UsageError(`labels file ${prepared.source.labelsPath} does not fit ${prepared.source.modelPath}: ${mismatch}`, {
        suggestion: 'give one label per class, indexed from 0',
      })
    }
  }

  served.sample = sampleRows(prepared.source.sample, input)
  const sampleDims = input.shape.slice(1)
  if (sampleDims.every(d => d !== null) && served.outputs.every(o => o.shape.length > 0 && o.shape[0] === null)) {
    served.batcher = new Batcher(
      engine,
      {name: input.name, type: input.type, sampleDims: sampleDims},
      served.outputs.map(o => o.name),
      MAX_BATCH_ROWS,
    )
  }

  return served
}

/**
 * Decides what /predict and /predict/label return:
 * - a ZipMap's probabilities, or a float output named like probabilities or
 *   scores next to a label output: a classifier;
 * - one float output [n, k] with k > 1 and nothing else: probabilities or
 *   logits of a classifier (label = argmax);
 * - otherwise raw outputs (regressors, one-class models).
 */
function classify(model: ServedModel, zipMaps: ZipMapInfo[], mapOutputs: Set<string>): void {
  const tensors = model.outputs.filter(o => !mapOutputs.has(o.name))
  model.labelOutput = tensors.find(o => (o.type === 'int64' || o.type === 'string') && /label/i.test(o.name))?.name
  const zipMap = zipMaps.find(z => tensors.some(o => o.name === z.tensor))
  const floats = tensors.filter(o => o.type.startsWith('float'))
  const named = floats.find(o => /prob/i.test(o.name))
  if (zipMap) {
    model.kind = 'classifier'
    model.probabilities = zipMap.tensor
    model.classLabels = zipMap.classLabels
  } else if (named && model.labelOutput) {
    model.kind = 'classifier'
    model.probabilities = named.name
  } else if (tensors.length === 1 && floats.length === 1 && (floats[0].shape.at(-1) ?? 0) > 1) {
    model.kind = 'classifier'
    model.probabilities = floats[0].name
  } else if (!model.labelOutput && floats.length > 0) {
    model.kind = 'regressor'
  }

  model.outputs = tensors
}

function dims(shape: Array<number | string | null> | undefined): Dim[] {
  return (shape ?? []).map(d => (typeof d === 'number' && d > 0 ? d : null))
}

function sampleRows(sample: unknown, input: TensorSpec): unknown[] {
  if (sample !== undefined) return Array.isArray(sample) && Array.isArray(sample[0]) ? sample : [sample]
  const zeros = (shape: Dim[]): unknown => (shape.length === 0 ? 0 : Array.from({length: shape[0] ?? 1}, () => zeros(shape.slice(1))))
  return [zeros(input.shape.slice(1))]
}

export interface Prediction {
  /** Per row: class probabilities (classifiers), else the raw output (one output) or an object of outputs. */
  prediction: unknown[]
  labels?: unknown[]
  outputs: Record<string, WireTensor>
}

/** Runs one batch and reads it the way the model's kind says. */
export async function predict(
  model: ServedModel,
  values: TypedArray,
  batchDims: number[],
  options: {labels: boolean},
): Promise<Prediction> {
  let outputs: Record<string, WireTensor>
  try {
    outputs =
      model.batcher && batchDims[0] <= MAX_BATCH_ROWS
        ? await model.batcher.run(values, batchDims[0])
        : await model.engine.run(
            {name: model.input.name, type: model.input.type, dims: batchDims, data: values},
            model.outputs.map(o => o.name),
          )
  } catch (error) {
    throw new InferenceError(`inference failed: ${errorMessage(error).split('\n')[0]}`)
  }

  const result: Prediction = {prediction: rowsOf(model, outputs), outputs}
  if (options.labels) result.labels = labelsOf(model, outputs)
  return result
}

function rowsOf(model: ServedModel, outputs: Record<string, WireTensor>): unknown[] {
  if (model.probabilities) return tensorRows(outputs[model.probabilities])
  if (model.outputs.length === 1) return tensorRows(outputs[model.outputs[0].name])
  const columns = model.outputs.map(o => [o.name, tensorRows(outputs[o.name])] as const)
  return columns[0][1].map((_, row) => Object.fromEntries(columns.map(([name, rows]) => [name, rows[row]])))
}

function labelsOf(model: ServedModel, outputs: Record<string, WireTensor>): unknown[] {
  const name = (value: unknown): unknown => {
    const scalar = Array.isArray(value) && value.length === 1 ? value[0] : value
    return model.labels?.[String(scalar)] ?? scalar
  }

  if (model.labelOutput && model.labelFrom === 'output') return tensorRows(outputs[model.labelOutput]).map(name)
  if (model.kind !== 'classifier' || !model.probabilities) {
    throw new BadRequestError(`${model.name} has no labels (a ${model.kind} model): use /predict for its outputs`)
  }

  return (tensorRows(outputs[model.probabilities]) as number[][]).map(row => {
    let best = 0
    for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i
    return name(model.classLabels?.[best] ?? best)
  })
}

function opsetList(info: OnnxInfo): string {
  return info.opsetImports.map(o => `${o.domain} ${o.version}`).join(', ')
}
