import type {ByteSource} from './byte-source.js'

/** Protocol-buffer wire types. */
export const WireType = {VARINT: 0, I64: 1, LEN: 2, I32: 5} as const

export class WireFormatError extends Error {}

export interface Field {
  number: number
  wireType: number
  /** Value for VARINT fields. */
  varint?: bigint
  /** Where the field's tag begins (absolute offset in the source). */
  tagStart: number
  /** Payload range for LEN fields, value range otherwise (absolute offsets). */
  start: number
  end: number
}

/**
 * Iterates the fields of one protobuf message between [start, end) of a
 * byte source. Length-delimited payloads are not read, only located, so a
 * caller can descend into the fields it wants and skip the rest.
 */
export function* fields(source: ByteSource, start: number, end: number): Generator<Field> {
  let pos = start
  while (pos < end) {
    const tagStart = pos
    const [tag, afterTag] = readVarint(source, pos, end)
    const number = Number(tag >> 3n)
    const wireType = Number(tag & 7n)
    if (number === 0) throw new WireFormatError(`field number 0 at byte ${pos}`)
    pos = afterTag
    switch (wireType) {
      case WireType.VARINT: {
        const [value, next] = readVarint(source, pos, end)
        yield {number, wireType, varint: value, tagStart, start: pos, end: next}
        pos = next
        break
      }

      case WireType.I64:
      case WireType.I32: {
        const width = wireType === WireType.I64 ? 8 : 4
        if (pos + width > end) throw new WireFormatError(`fixed-width field ${number} runs past the end at byte ${pos}`)
        yield {number, wireType, tagStart, start: pos, end: pos + width}
        pos += width
        break
      }

      case WireType.LEN: {
        const [length, next] = readVarint(source, pos, end)
        const payloadEnd = next + Number(length)
        if (length > BigInt(end - next)) {
          throw new WireFormatError(`field ${number} declares ${length} bytes but only ${end - next} remain`)
        }

        yield {number, wireType, tagStart, start: next, end: payloadEnd}
        pos = payloadEnd
        break
      }

      default: {
        throw new WireFormatError(`unsupported wire type ${wireType} for field ${number} at byte ${pos}`)
      }
    }
  }
}

export function readVarint(source: ByteSource, pos: number, end: number): [bigint, number] {
  const bytes = source.read(pos, Math.min(10, end - pos))
  let value = 0n
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]
    value |= BigInt(byte & 0x7f) << BigInt(7 * i)
    if ((byte & 0x80) === 0) return [value, pos + i + 1]
  }

  throw new WireFormatError(`unterminated varint at byte ${pos}`)
}

export function readString(source: ByteSource, field: Field): string {
  expectWireType(field, WireType.LEN)
  return source.read(field.start, field.end - field.start).toString('utf8')
}

export function readInt(field: Field): number {
  expectWireType(field, WireType.VARINT)
  return Number(BigInt.asIntN(64, field.varint!))
}

export function expectWireType(field: Field, wireType: number): void {
  if (field.wireType !== wireType) {
    throw new WireFormatError(`field ${field.number} has wire type ${field.wireType}, expected ${wireType}`)
  }
}

/** Encodes a protobuf varint. */
export function encodeVarint(value: number | bigint): Buffer {
  let v = BigInt(value)
  const bytes: number[] = []
  do {
    let byte = Number(v & 0x7fn)
    v >>= 7n
    if (v > 0n) byte |= 0x80
    bytes.push(byte)
  } while (v > 0n)
  return Buffer.from(bytes)
}

/** Encodes one length-delimited field. */
export function encodeLenField(number: number, payload: Buffer | string): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload
  return Buffer.concat([encodeVarint((number << 3) | WireType.LEN), encodeVarint(bytes.length), bytes])
}

export function encodeVarintField(number: number, value: number): Buffer {
  return Buffer.concat([encodeVarint((number << 3) | WireType.VARINT), encodeVarint(value)])
}
