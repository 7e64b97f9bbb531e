import {readFileSync, writeFileSync} from 'node:fs'

import {BufferSource} from '../../src/onnx/byte-source.js'
import {encodeLenField, encodeVarintField, fields, readString} from '../../src/onnx/wire.js'

/** Field numbers from onnx.proto: ModelProto.graph, GraphProto.{node,initializer,input}, NodeProto.input, TensorProto, AttributeProto. */
const MODEL_GRAPH = 7
const GRAPH = {NODE: 1, INITIALIZER: 5, INPUT: 11}
const NODE = {INPUT: 1, OUTPUT: 2, NAME: 3, OP_TYPE: 4, ATTRIBUTE: 5}
const TENSOR = {DIMS: 1, DATA_TYPE: 2, NAME: 8, RAW_DATA: 9}
const ATTRIBUTE = {NAME: 1, I: 3, TYPE: 20}
const DATA_TYPE = {FLOAT: 1, INT64: 7}
const ATTRIBUTE_INT = 2

/** The index a negative value asks the guard's one-element table for: out of range, so onnxruntime throws. */
export const OUT_OF_RANGE_INDEX = 1000

const node = (op: string, inputs: string[], outputs: string[], attributes: Buffer[] = []) =>
  encodeLenField(
    GRAPH.NODE,
    Buffer.concat([
      ...inputs.map(name => encodeLenField(NODE.INPUT, name)),
      ...outputs.map(name => encodeLenField(NODE.OUTPUT, name)),
      encodeLenField(NODE.NAME, `guard_${op}`),
      encodeLenField(NODE.OP_TYPE, op),
      ...attributes.map(attribute => encodeLenField(NODE.ATTRIBUTE, attribute)),
    ]),
  )

const initializer = (name: string, dataType: number, dims: number[], raw: Buffer) =>
  encodeLenField(
    GRAPH.INITIALIZER,
    Buffer.concat([
      ...dims.map(d => encodeVarintField(TENSOR.DIMS, d)),
      encodeVarintField(TENSOR.DATA_TYPE, dataType),
      encodeLenField(TENSOR.NAME, name),
      encodeLenField(TENSOR.RAW_DATA, raw),
    ]),
  )

const float32 = (value: number) => {
  const bytes = Buffer.alloc(4)
  bytes.writeFloatLE(value)
  return bytes
}

const int64 = (value: number) => {
  const bytes = Buffer.alloc(8)
  bytes.writeBigInt64LE(BigInt(value))
  return bytes
}

/**
 * A copy of a model with one float input [N,4] that gives the same answers for every row
 * without a negative value, and makes onnxruntime throw at inference for a request with one:
 * a guard in front of the model's own nodes, input + Gather(table [0.0], Cast(input < 0) × 1000),
 * whose index is 0 for a value ≥ 0 and 1000 (out of the table's range) for a negative one.
 * Same input and outputs (names, types, shapes) as the model it wraps; the opset stays the
 * model's (Less, Cast, Mul, Gather and Add are all in opset 9).
 */
export function writeNegativeFailingOnnx(from: string, to: string): void {
  const model = readFileSync(from)
  const source = new BufferSource(model)
  const parts: Buffer[] = []
  for (const field of fields(source, 0, model.length)) {
    parts.push(
      field.number === MODEL_GRAPH
        ? encodeLenField(MODEL_GRAPH, guardedGraph(model, field.start, field.end))
        : model.subarray(field.tagStart, field.end),
    )
  }

  writeFileSync(to, Buffer.concat(parts))
}

function guardedGraph(model: Buffer, start: number, end: number): Buffer {
  const source = new BufferSource(model)
  const inputs = [...fields(source, start, end)].filter(field => field.number === GRAPH.INPUT)
  if (inputs.length !== 1) throw new Error(`the model has ${inputs.length} graph inputs; the guard wraps a model with one`)
  const input = readString(
    source,
    [...fields(source, inputs[0].start, inputs[0].end)].find(field => field.number === 1)!,
  )
  const checked = `${input}_guarded`
  const guard = [
    initializer('guard_zero', DATA_TYPE.FLOAT, [], float32(0)),
    initializer('guard_out_of_range', DATA_TYPE.INT64, [], int64(OUT_OF_RANGE_INDEX)),
    initializer('guard_table', DATA_TYPE.FLOAT, [1], float32(0)),
    node('Less', [input, 'guard_zero'], ['guard_negative']),
    node(
      'Cast',
      ['guard_negative'],
      ['guard_negative_int'],
      [
        Buffer.concat([
          encodeLenField(ATTRIBUTE.NAME, 'to'),
          encodeVarintField(ATTRIBUTE.I, DATA_TYPE.INT64),
          encodeVarintField(ATTRIBUTE.TYPE, ATTRIBUTE_INT),
        ]),
      ],
    ),
    node('Mul', ['guard_negative_int', 'guard_out_of_range'], ['guard_index']),
    node('Gather', ['guard_table', 'guard_index'], ['guard_zeros']),
    node('Add', [input, 'guard_zeros'], [checked]),
  ]
  const rest: Buffer[] = []
  for (const field of fields(source, start, end)) {
    rest.push(
      field.number === GRAPH.NODE
        ? encodeLenField(GRAPH.NODE, renamedInput(model, field.start, field.end, input, checked))
        : model.subarray(field.tagStart, field.end),
    )
  }

  return Buffer.concat([...guard, ...rest])
}

/** A node of the model, reading `checked` where it read the graph's input. */
function renamedInput(model: Buffer, start: number, end: number, from: string, to: string): Buffer {
  const source = new BufferSource(model)
  return Buffer.concat(
    [...fields(source, start, end)].map(field =>
      field.number === NODE.INPUT && readString(source, field) === from
        ? encodeLenField(NODE.INPUT, to)
        : model.subarray(field.tagStart, field.end),
    ),
  )
}
