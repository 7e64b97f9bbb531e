/** A request the model cannot take: answered with HTTP 400 and this message. */
export class BadRequestError extends Error {
  readonly statusCode = 400
}

export type Dim = number | null

export interface TensorSpec {
  name: string
  /** onnxruntime's type name: float32, float64, int64, int32, ... */
  type: string
  /** Null for a symbolic or unknown dimension. */
  shape: Dim[]
}

export type TypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Int16Array | Uint16Array

const NUMERIC: Record<string, (size: number) => TypedArray> = {
  float32: size => new Float32Array(size),
  float64: size => new Float64Array(size),
  int32: size => new Int32Array(size),
  int64: size => new BigInt64Array(size),
  uint8: size => new Uint8Array(size),
  int8: size => new Int8Array(size),
  int16: size => new Int16Array(size),
  uint16: size => new Uint16Array(size),
}

export function isSupportedInputType(type: string): boolean {
  return type in NUMERIC
}

/**
 * Checks a batch (an array of samples, each matching the input shape without
 * its batch axis) and flattens it into the input's element type. Throws
 * BadRequestError saying what was expected. A flat row of numbers is taken
 * as one sample for rank-2 inputs.
 */
export function batchToTensorData(data: unknown, spec: TensorSpec): {values: TypedArray; dims: number[]} {
  const sampleShape = spec.shape.slice(1)
  const expected = describeShape(sampleShape)
  if (!Array.isArray(data)) throw new BadRequestError(`"data" must be a list of rows, each ${expected}`)
  if (data.length === 0) throw new BadRequestError(`"data" is empty: send at least one row (${expected})`)
  const rows = sampleShape.length === 1 && data.every(v => typeof v === 'number') ? [data] : data
  const flat: number[] = []
  const dims = [rows.length, ...sampleShape.map(d => d ?? -1)]
  rows.forEach((row, index) => collect(row, 1, dims, flat, `row ${index}`, expected))
  return {values: toTyped(flat, spec), dims}
}

/** Flat data with an explicit shape (Open Inference Protocol), checked against the input. */
export function flatToTensorData(data: unknown, shape: unknown, spec: TensorSpec): {values: TypedArray; dims: number[]} {
  if (!Array.isArray(shape) || shape.some(d => !Number.isInteger(d) || d < 0))
    throw new BadRequestError(`input ${spec.name}: "shape" must be a list of non-negative integers`)
  if (shape.length !== spec.shape.length)
    throw new BadRequestError(
      `input ${spec.name}: shape has ${shape.length} axes, the model expects ${spec.shape.length} (${describeShape(spec.shape)})`,
    )
  spec.shape.forEach((d, axis) => {
    if (d !== null && d !== shape[axis])
      throw new BadRequestError(`input ${spec.name}: axis ${axis} is ${shape[axis]}, the model expects ${d} (${describeShape(spec.shape)})`)
  })
  if (shape[0] === 0) throw new BadRequestError(`input ${spec.name}: the batch is empty`)
  const flat = Array.isArray(data) ? (data.flat(Number.POSITIVE_INFINITY) as unknown[]) : undefined
  const size = (shape as number[]).reduce((a, b) => a * b, 1)
  if (!flat || flat.length !== size)
    throw new BadRequestError(
      `input ${spec.name}: "data" must hold ${size} numbers for shape [${shape.join(',')}], got ${flat ? flat.length : typeof data}`,
    )
  flat.forEach((v, i) => checkNumber(v, `input ${spec.name} element ${i}`))
  return {values: toTyped(flat as number[], spec), dims: shape as number[]}
}

function collect(value: unknown, axis: number, dims: number[], flat: number[], where: string, expected: string): void {
  if (axis === dims.length) {
    checkNumber(value, where)
    flat.push(value as number)
    return
  }

  if (!Array.isArray(value)) throw new BadRequestError(`${where} must be ${expected}, got ${describeValue(value)}`)
  if (dims[axis] === -1) dims[axis] = value.length
  if (value.length !== dims[axis])
    throw new BadRequestError(`${where} has ${value.length} values, the model expects ${dims[axis]} (${expected})`)
  value.forEach((v, i) => collect(v, axis + 1, dims, flat, `${where}[${i}]`, expected))
}

function checkNumber(value: unknown, where: string): void {
  // JSON.parse turns 1e400 into Infinity: a number, but none a model can take.
  if (typeof value === 'number' && !Number.isFinite(value))
    throw new BadRequestError(`${where} must be a finite number, got ${value} (out of the float64 range)`)
  if (typeof value !== 'number') throw new BadRequestError(`${where} must be a number, got ${describeValue(value)}`)
}

/** The range of each integer input type: a value outside it, or with a fraction, is refused, never wrapped or truncated. */
const INTEGER_RANGE: Record<string, [number, number]> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32_768, 32_767],
  uint16: [0, 65_535],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
}

function toTyped(flat: number[], spec: TensorSpec): TypedArray {
  const make = NUMERIC[spec.type]
  if (!make) throw new BadRequestError(`input ${spec.name} has type ${spec.type}, which this server cannot fill from JSON`)
  const values = make(flat.length)
  const range = INTEGER_RANGE[spec.type]
  if (range) {
    for (const [i, v] of flat.entries()) {
      if (!Number.isInteger(v)) throw new BadRequestError(`input ${spec.name} is ${spec.type}: element ${i} (${v}) is not an integer`)
      if (v < range[0] || v > range[1])
        throw new BadRequestError(`input ${spec.name} is ${spec.type}: element ${i} (${v}) is outside ${range[0]}..${range[1]}`)
    }
  }

  if (values instanceof BigInt64Array) {
    for (const [i, v] of flat.entries()) values[i] = BigInt(v)
  } else {
    values.set(flat)
  }

  return values
}

export function describeShape(shape: Dim[]): string {
  if (shape.length === 0) return 'a number'
  return `[${shape.map(d => d ?? 'n').join(', ')}] numbers`
}

function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return `a list of ${value.length}`
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 20 ? `${value.slice(0, 20)}...` : value)}`
  return typeof value
}

/** What the runtime returns for one output: element type, shape and flat data. */
export interface OutputTensor {
  type: string
  dims: number[]
  data: ArrayLike<bigint | boolean | number | string>
}

/** Tensor values as JSON numbers (int64 as numbers; exact below 2^53). */
export function tensorValues(tensor: OutputTensor): Array<number | string | boolean> {
  const {data} = tensor
  const out: Array<number | string | boolean> = Array.from({length: data.length})
  for (let i = 0; i < data.length; i++) {
    const v = data[i]
    out[i] = typeof v === 'bigint' ? Number(v) : v
  }

  return out
}

/** Splits a tensor into one entry per batch row, nested by the remaining axes. */
export function tensorRows(tensor: OutputTensor): unknown[] {
  const values = tensorValues(tensor)
  const {dims} = tensor
  if (dims.length === 0) return values
  return nest(values, dims, 0, 0).value as unknown[]
}

function nest(values: unknown[], dims: number[], axis: number, offset: number): {value: unknown; size: number} {
  if (axis === dims.length) return {value: values[offset], size: 1}
  const out: unknown[] = []
  let size = 0
  for (let i = 0; i < dims[axis]; i++) {
    const child = nest(values, dims, axis + 1, offset + size)
    out.push(child.value)
    size += child.size
  }

  return {value: out, size}
}
