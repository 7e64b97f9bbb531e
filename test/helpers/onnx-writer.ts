import {closeSync, openSync, writeFileSync, writeSync} from 'node:fs'

import {WireType, encodeLenField, encodeVarint, encodeVarintField} from '../../src/onnx/wire.js'

const intField = encodeVarintField
const bytesField = encodeLenField
const lengthPrefix = (field: number, length: number) => Buffer.concat([encodeVarint((field << 3) | WireType.LEN), encodeVarint(length)])

function tensorValueInfo(name: string, dims: Array<number | string>): Buffer {
  const dimMessages = dims.map(d => bytesField(1, typeof d === 'number' ? intField(1, d) : bytesField(2, d)))
  const tensorType = Buffer.concat([intField(1, 1), bytesField(2, Buffer.concat(dimMessages))])
  return Buffer.concat([bytesField(1, name), bytesField(2, bytesField(1, tensorType))])
}

/**
 * Writes a valid ONNX model (Identity on a float [N,4] input) carrying an
 * unused float initializer of `weightBytes` bytes, streamed so that a
 * multi-GiB file needs no memory of that size.
 */
export function writeSyntheticOnnx(path: string, weightBytes: number): void {
  const weightCount = Math.floor(weightBytes / 4)
  const initializerHead = Buffer.concat([intField(1, weightCount), intField(2, 1), bytesField(8, 'weights')])
  const initializerLength = initializerHead.length + lengthPrefix(9, weightCount * 4).length + weightCount * 4
  const node = bytesField(1, Buffer.concat([bytesField(1, 'x'), bytesField(2, 'y'), bytesField(4, 'Identity')]))
  const graphTail = Buffer.concat([
    bytesField(2, 'synthetic'),
    bytesField(11, tensorValueInfo('x', ['N', 4])),
    bytesField(12, tensorValueInfo('y', ['N', 4])),
  ])
  const initializerPrefix = lengthPrefix(5, initializerLength)
  const graphLength = node.length + initializerPrefix.length + initializerLength + graphTail.length
  const head = Buffer.concat([
    intField(1, 8),
    bytesField(2, 'mlops-synthetic'),
    bytesField(3, '1'),
    bytesField(8, Buffer.concat([bytesField(1, ''), intField(2, 15)])),
    lengthPrefix(7, graphLength),
    node,
    initializerPrefix,
    initializerHead,
    lengthPrefix(9, weightCount * 4),
  ])
  const fd = openSync(path, 'w')
  try {
    writeSync(fd, head)
    const block = Buffer.alloc(Math.min(8 << 20, Math.max(weightCount * 4, 4)))
    for (let i = 0; i < block.length; i += 4) block.writeFloatLE((i % 997) / 997, i)
    for (let left = weightCount * 4; left > 0; left -= block.length) writeSync(fd, block, 0, Math.min(block.length, left))
    writeSync(fd, graphTail)
  } finally {
    closeSync(fd)
  }
}

/**
 * A valid model (float [N,4] in and out) that is a chain of `nodes` Relu
 * operators: small on disk, but onnxruntime needs a while to load and
 * optimize it, which gives tests a loading window they can observe. With
 * another operator name (one no runtime has), a model that parses but never loads.
 */
export function writeSlowLoadingOnnx(path: string, nodes: number, operator = 'Relu'): void {
  const parts: Buffer[] = []
  for (let i = 0; i < nodes; i++) {
    const input = i === 0 ? 'x' : `t${i - 1}`
    const output = i === nodes - 1 ? 'y' : `t${i}`
    parts.push(bytesField(1, Buffer.concat([bytesField(1, input), bytesField(2, output), bytesField(3, `n${i}`), bytesField(4, operator)])))
  }

  const graph = Buffer.concat([
    ...parts,
    bytesField(2, 'slow'),
    bytesField(11, tensorValueInfo('x', ['N', 4])),
    bytesField(12, tensorValueInfo('y', ['N', 4])),
  ])
  writeFileSync(
    path,
    Buffer.concat([
      intField(1, 8),
      bytesField(2, 'mlops-synthetic'),
      bytesField(8, Buffer.concat([bytesField(1, ''), intField(2, 15)])),
      bytesField(7, graph),
    ]),
  )
}
