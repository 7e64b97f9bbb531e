import {type ByteSource, BufferSource, FileSource} from './byte-source.js'
import {type Field, WireFormatError, WireType, expectWireType, fields, readInt, readString} from './wire.js'

/** Field numbers from onnx.proto (ModelProto, GraphProto, ValueInfoProto, TypeProto, ...). */
const MODEL = {IR_VERSION: 1, PRODUCER_NAME: 2, PRODUCER_VERSION: 3, DOMAIN: 4, MODEL_VERSION: 5, GRAPH: 7, OPSET_IMPORT: 8}
const OPSET = {DOMAIN: 1, VERSION: 2}
const GRAPH = {NODE: 1, NAME: 2, INITIALIZER: 5, INPUT: 11, OUTPUT: 12}
const NODE = {OP_TYPE: 4, DOMAIN: 7}
const TENSOR = {NAME: 8}
const VALUE_INFO = {NAME: 1, TYPE: 2}
const TYPE = {TENSOR: 1, SEQUENCE: 4, MAP: 5, SPARSE_TENSOR: 8, OPTIONAL: 9}
const TENSOR_TYPE = {ELEM_TYPE: 1, SHAPE: 2}
const SHAPE = {DIM: 1}
const DIM = {VALUE: 1, PARAM: 2}
const SEQUENCE = {ELEM_TYPE: 1}
const MAP = {KEY_TYPE: 1, VALUE_TYPE: 2}
const OPTIONAL = {ELEM_TYPE: 1}

/** TensorProto.DataType, named as onnxruntime names them. */
const ELEMENT_TYPES: Record<number, string> = {
  1: 'float',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'double',
  12: 'uint32',
  13: 'uint64',
  14: 'complex64',
  15: 'complex128',
  16: 'bfloat16',
  17: 'float8e4m3fn',
  18: 'float8e4m3fnuz',
  19: 'float8e5m2',
  20: 'float8e5m2fnuz',
  21: 'uint4',
  22: 'int4',
  23: 'float4e2m1',
}

export type Dimension = number | string | null

export interface OnnxType {
  kind: 'tensor' | 'sparse_tensor' | 'sequence' | 'map' | 'optional' | 'unknown'
  /** For tensors: the element type. */
  elemType?: string
  /** For tensors: one entry per axis; a number, a symbolic name, or null when unknown. Absent when the rank is unknown. */
  shape?: Dimension[]
  /** For maps: the key's element type. */
  keyType?: string
  /** For sequences, maps and optionals: the inner type. */
  valueType?: OnnxType
}

export interface OnnxValueInfo {
  name: string
  /** Readable type, e.g. `tensor(float)[N,4]` or `seq(map(int64,tensor(float)))`. */
  type: string
  kind: OnnxType['kind']
  elemType?: string
  shape?: Dimension[]
}

export interface OpsetImport {
  domain: string
  version: number
}

export interface OnnxInfo {
  irVersion: number
  opsetImports: OpsetImport[]
  producerName: string
  producerVersion: string
  domain: string
  modelVersion: number
  graphName: string
  inputs: OnnxValueInfo[]
  outputs: OnnxValueInfo[]
  /** Operators the graph uses, as `domain:OpType` (`ai.onnx` for the default domain), sorted. */
  operators: string[]
}

export class InvalidOnnxError extends Error {}

export function readOnnxInfoFromFile(path: string): OnnxInfo {
  const source = new FileSource(path)
  try {
    return readOnnxInfo(source)
  } finally {
    source.close()
  }
}

export function readOnnxInfoFromBuffer(buffer: Buffer): OnnxInfo {
  return readOnnxInfo(new BufferSource(buffer))
}

/**
 * Reads what a model declares about itself: IR version, opsets, producer,
 * the graph's inputs and outputs (without initializers) and its operators.
 * Throws InvalidOnnxError for anything that is not a well-formed ModelProto.
 */
export function readOnnxInfo(source: ByteSource): OnnxInfo {
  if (source.size === 0) throw new InvalidOnnxError('the file is empty')
  try {
    return parseModel(source)
  } catch (error) {
    if (error instanceof WireFormatError)
      throw new InvalidOnnxError(`not a valid ONNX model (truncated, corrupt or another format): ${error.message}`)
    throw error
  }
}

function parseModel(source: ByteSource): OnnxInfo {
  const info: OnnxInfo = {
    irVersion: 0,
    opsetImports: [],
    producerName: '',
    producerVersion: '',
    domain: '',
    modelVersion: 0,
    graphName: '',
    inputs: [],
    outputs: [],
    operators: [],
  }
  let graph: Field | undefined
  for (const field of fields(source, 0, source.size)) {
    switch (field.number) {
      case MODEL.IR_VERSION: {
        info.irVersion = readInt(field)
        break
      }
      case MODEL.PRODUCER_NAME: {
        info.producerName = readString(source, field)
        break
      }
      case MODEL.PRODUCER_VERSION: {
        info.producerVersion = readString(source, field)
        break
      }
      case MODEL.DOMAIN: {
        info.domain = readString(source, field)
        break
      }
      case MODEL.MODEL_VERSION: {
        info.modelVersion = readInt(field)
        break
      }
      case MODEL.OPSET_IMPORT: {
        info.opsetImports.push(parseOpset(source, field))
        break
      }
      case MODEL.GRAPH: {
        expectWireType(field, WireType.LEN)
        graph = field
        break
      }
      default:
        break
    }
  }

  if (info.irVersion <= 0) throw new InvalidOnnxError('not an ONNX model: no ir_version')
  if (!graph) throw new InvalidOnnxError('not an ONNX model: no graph')
  parseGraph(source, graph, info)
  if (info.outputs.length === 0) throw new InvalidOnnxError('not an ONNX model: the graph has no outputs')
  return info
}

function parseOpset(source: ByteSource, field: Field): OpsetImport {
  expectWireType(field, WireType.LEN)
  const opset: OpsetImport = {domain: '', version: 0}
  for (const f of fields(source, field.start, field.end)) {
    if (f.number === OPSET.DOMAIN) opset.domain = readString(source, f)
    else if (f.number === OPSET.VERSION) opset.version = readInt(f)
  }

  if (opset.domain === '') opset.domain = 'ai.onnx'
  return opset
}

function parseGraph(source: ByteSource, graph: Field, info: OnnxInfo): void {
  const initializers = new Set<string>()
  const inputs: OnnxValueInfo[] = []
  const operators = new Set<string>()
  for (const field of fields(source, graph.start, graph.end)) {
    switch (field.number) {
      case GRAPH.NAME: {
        info.graphName = readString(source, field)
        break
      }
      case GRAPH.INPUT: {
        inputs.push(parseValueInfo(source, field))
        break
      }
      case GRAPH.OUTPUT: {
        info.outputs.push(parseValueInfo(source, field))
        break
      }
      case GRAPH.INITIALIZER: {
        initializers.add(parseInitializerName(source, field))
        break
      }
      case GRAPH.NODE: {
        operators.add(parseOperator(source, field))
        break
      }
      default:
        break
    }
  }

  // Before IR 4, initializers were also listed as graph inputs; they are not inputs a caller feeds.
  info.inputs = inputs.filter(input => !initializers.has(input.name))
  info.operators = [...operators].sort()
}

function parseInitializerName(source: ByteSource, field: Field): string {
  expectWireType(field, WireType.LEN)
  for (const f of fields(source, field.start, field.end)) {
    if (f.number === TENSOR.NAME) return readString(source, f)
  }

  return ''
}

function parseOperator(source: ByteSource, field: Field): string {
  expectWireType(field, WireType.LEN)
  let opType = ''
  let domain = ''
  for (const f of fields(source, field.start, field.end)) {
    if (f.number === NODE.OP_TYPE) opType = readString(source, f)
    else if (f.number === NODE.DOMAIN) domain = readString(source, f)
  }

  return `${domain || 'ai.onnx'}:${opType}`
}

function parseValueInfo(source: ByteSource, field: Field): OnnxValueInfo {
  expectWireType(field, WireType.LEN)
  let name = ''
  let type: OnnxType = {kind: 'unknown'}
  for (const f of fields(source, field.start, field.end)) {
    if (f.number === VALUE_INFO.NAME) name = readString(source, f)
    else if (f.number === VALUE_INFO.TYPE) type = parseType(source, f)
  }

  const value: OnnxValueInfo = {name, type: formatType(type), kind: type.kind}
  if (type.elemType !== undefined) value.elemType = type.elemType
  if (type.shape !== undefined) value.shape = type.shape
  return value
}

function parseType(source: ByteSource, field: Field): OnnxType {
  expectWireType(field, WireType.LEN)
  for (const f of fields(source, field.start, field.end)) {
    switch (f.number) {
      case TYPE.TENSOR: {
        return parseTensorType(source, f, 'tensor')
      }
      case TYPE.SPARSE_TENSOR: {
        return parseTensorType(source, f, 'sparse_tensor')
      }
      case TYPE.SEQUENCE: {
        return {kind: 'sequence', valueType: parseInnerType(source, f, SEQUENCE.ELEM_TYPE)}
      }
      case TYPE.OPTIONAL: {
        return {kind: 'optional', valueType: parseInnerType(source, f, OPTIONAL.ELEM_TYPE)}
      }
      case TYPE.MAP: {
        return parseMapType(source, f)
      }
      default:
        break
    }
  }

  return {kind: 'unknown'}
}

function parseInnerType(source: ByteSource, field: Field, number: number): OnnxType {
  expectWireType(field, WireType.LEN)
  for (const f of fields(source, field.start, field.end)) {
    if (f.number === number) return parseType(source, f)
  }

  return {kind: 'unknown'}
}

function parseMapType(source: ByteSource, field: Field): OnnxType {
  expectWireType(field, WireType.LEN)
  const type: OnnxType = {kind: 'map'}
  for (const f of fields(source, field.start, field.end)) {
    if (f.number === MAP.KEY_TYPE) type.keyType = elementTypeName(readInt(f))
    else if (f.number === MAP.VALUE_TYPE) type.valueType = parseType(source, f)
  }

  return type
}

function parseTensorType(source: ByteSource, field: Field, kind: 'tensor' | 'sparse_tensor'): OnnxType {
  expectWireType(field, WireType.LEN)
  const type: OnnxType = {kind}
  for (const f of fields(source, field.start, field.end)) {
    if (f.number === TENSOR_TYPE.ELEM_TYPE) type.elemType = elementTypeName(readInt(f))
    else if (f.number === TENSOR_TYPE.SHAPE) type.shape = parseShape(source, f)
  }

  return type
}

function parseShape(source: ByteSource, field: Field): Dimension[] {
  expectWireType(field, WireType.LEN)
  const dims: Dimension[] = []
  for (const f of fields(source, field.start, field.end)) {
    if (f.number !== SHAPE.DIM) continue
    expectWireType(f, WireType.LEN)
    let dim: Dimension = null
    for (const d of fields(source, f.start, f.end)) {
      if (d.number === DIM.VALUE) dim = readInt(d)
      else if (d.number === DIM.PARAM) dim = readString(source, d)
    }

    dims.push(dim)
  }

  return dims
}

function elementTypeName(code: number): string {
  return ELEMENT_TYPES[code] ?? `type${code}`
}

export function formatType(type: OnnxType): string {
  switch (type.kind) {
    case 'tensor':
    case 'sparse_tensor': {
      const shape = type.shape ? `[${type.shape.map(d => d ?? '?').join(',')}]` : ''
      return `${type.kind}(${type.elemType ?? '?'})${shape}`
    }

    case 'sequence': {
      return `seq(${formatType(type.valueType ?? {kind: 'unknown'})})`
    }
    case 'optional': {
      return `optional(${formatType(type.valueType ?? {kind: 'unknown'})})`
    }
    case 'map': {
      return `map(${type.keyType ?? '?'},${formatType(type.valueType ?? {kind: 'unknown'})})`
    }
    default: {
      return 'unknown'
    }
  }
}
