import {type ByteSource, BufferSource, FileSource} from './byte-source.js'
import {type Field, WireType, encodeLenField, encodeVarint, encodeVarintField, fields, readInt, readString} from './wire.js'

const MODEL_GRAPH = 7
const GRAPH = {NODE: 1, OUTPUT: 12}
const NODE = {INPUT: 1, OUTPUT: 2, OP_TYPE: 4, ATTRIBUTE: 5, DOMAIN: 7}
const ATTRIBUTE = {NAME: 1, INTS: 8, STRINGS: 9}
const VALUE_INFO = {NAME: 1, TYPE: 2}
const TYPE_TENSOR = 1
const TENSOR_ELEM_TYPE = 1
const FLOAT = 1

/** A ZipMap node: the tensor it turns into a sequence of maps, and the class of each column. */
export interface ZipMapInfo {
  /** The graph output holding the sequence of maps (not a tensor). */
  mapOutput: string
  /** ZipMap's input: the probabilities as a float tensor [N, classes]. */
  tensor: string
  classLabels: Array<number | string>
}

/**
 * scikit-learn classifiers converted by skl2onnx end in ZipMap, whose output
 * is a sequence of maps that onnxruntime-node cannot return. This adds each
 * ZipMap's input tensor to the graph outputs (appending a field to the
 * GraphProto, which protobuf allows), so the probabilities can be read as a
 * plain tensor; the model is otherwise untouched.
 */
export function exposeZipMapInputs(model: Buffer): {model: Buffer; zipMaps: ZipMapInfo[]} {
  const source = new BufferSource(model)
  const graph = [...fields(source, 0, model.length)].find(f => f.number === MODEL_GRAPH && f.wireType === WireType.LEN)
  if (!graph) return {model, zipMaps: []}

  const outputs = new Set<string>()
  const zipMaps: ZipMapInfo[] = []
  for (const field of fields(source, graph.start, graph.end)) {
    if (field.number === GRAPH.OUTPUT) outputs.add(valueInfoName(source, field))
    if (field.number === GRAPH.NODE) {
      const zipMap = readZipMap(source, field)
      if (zipMap) zipMaps.push(zipMap)
    }
  }

  const exposed = zipMaps.filter(z => outputs.has(z.mapOutput) && !outputs.has(z.tensor))
  if (exposed.length === 0) return {model, zipMaps}

  // A float tensor output with no shape: onnxruntime takes the shape from the graph.
  const tensorType = encodeLenField(TYPE_TENSOR, encodeVarintField(TENSOR_ELEM_TYPE, FLOAT))
  const extra = Buffer.concat(
    exposed.map(z =>
      encodeLenField(GRAPH.OUTPUT, Buffer.concat([encodeLenField(VALUE_INFO.NAME, z.tensor), encodeLenField(VALUE_INFO.TYPE, tensorType)])),
    ),
  )
  const graphPayload = Buffer.concat([model.subarray(graph.start, graph.end), extra])
  const rewritten = Buffer.concat([
    model.subarray(0, graph.tagStart),
    encodeVarint((MODEL_GRAPH << 3) | WireType.LEN),
    encodeVarint(graphPayload.length),
    graphPayload,
    model.subarray(graph.end),
  ])
  return {model: rewritten, zipMaps}
}

/**
 * The classes a model's ZipMap names (a scikit-learn classifier states them only there, not in
 * its outputs' shapes), read from the file without loading it; undefined without a ZipMap.
 */
export function zipMapClassCountOfFile(path: string): number | undefined {
  const source = new FileSource(path)
  try {
    const graph = [...fields(source, 0, source.size)].find(f => f.number === MODEL_GRAPH && f.wireType === WireType.LEN)
    if (!graph) return undefined
    for (const field of fields(source, graph.start, graph.end)) {
      if (field.number !== GRAPH.NODE) continue
      const zipMap = readZipMap(source, field)
      if (zipMap && zipMap.classLabels.length > 0) return zipMap.classLabels.length
    }
    return undefined
  } finally {
    source.close()
  }
}

function valueInfoName(source: ByteSource, field: Field): string {
  for (const f of fields(source, field.start, field.end)) if (f.number === VALUE_INFO.NAME) return readString(source, f)
  return ''
}

function readZipMap(source: ByteSource, node: Field): ZipMapInfo | undefined {
  const inputs: string[] = []
  const outputs: string[] = []
  let opType = ''
  let classLabels: Array<number | string> = []
  for (const f of fields(source, node.start, node.end)) {
    switch (f.number) {
      case NODE.INPUT: {
        inputs.push(readString(source, f))
        break
      }
      case NODE.OUTPUT: {
        outputs.push(readString(source, f))
        break
      }
      case NODE.OP_TYPE: {
        opType = readString(source, f)
        break
      }
      case NODE.ATTRIBUTE: {
        classLabels = readClassLabels(source, f) ?? classLabels
        break
      }
      default:
        break
    }
  }

  if (opType !== 'ZipMap' || inputs.length === 0 || outputs.length === 0) return undefined
  return {mapOutput: outputs[0], tensor: inputs[0], classLabels}
}

function readClassLabels(source: ByteSource, attribute: Field): Array<number | string> | undefined {
  let name = ''
  const ints: number[] = []
  const strings: string[] = []
  for (const f of fields(source, attribute.start, attribute.end)) {
    if (f.number === ATTRIBUTE.NAME) name = readString(source, f)
    else if (f.number === ATTRIBUTE.INTS && f.wireType === WireType.VARINT) ints.push(readInt(f))
    else if (f.number === ATTRIBUTE.INTS && f.wireType === WireType.LEN) ints.push(...readPackedInts(source, f))
    else if (f.number === ATTRIBUTE.STRINGS) strings.push(readString(source, f))
  }

  if (name === 'classlabels_int64s') return ints
  if (name === 'classlabels_strings') return strings
  return undefined
}

function readPackedInts(source: ByteSource, field: Field): number[] {
  const values: number[] = []
  let pos = field.start
  while (pos < field.end) {
    let value = 0n
    let shift = 0n
    for (;;) {
      const byte = source.read(pos++, 1)[0]
      value |= BigInt(byte & 0x7f) << shift
      shift += 7n
      if ((byte & 0x80) === 0) break
    }

    values.push(Number(BigInt.asIntN(64, value)))
  }

  return values
}
