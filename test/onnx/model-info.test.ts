import {expect} from 'chai'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {BufferSource, type ByteSource, FileSource} from '../../src/onnx/byte-source.js'
import {InvalidOnnxError, readOnnxInfo, readOnnxInfoFromFile} from '../../src/onnx/model-info.js'
import {expected, fixture, tempDir} from '../helpers/stores.js'
import {writeSyntheticOnnx} from '../helpers/onnx-writer.js'

describe('ONNX signature reader', () => {
  for (const [file, model] of Object.entries<any>(expected.models)) {
    it(`reads ${file} as the onnx package does (IR, opsets, producer, inputs, outputs)`, () => {
      const info = readOnnxInfoFromFile(fixture(file))
      expect(info.irVersion).to.equal(model.onnx.ir_version)
      expect(info.producerName).to.equal(model.onnx.producer_name)
      expect(info.producerVersion).to.equal(model.onnx.producer_version)
      expect(info.graphName).to.equal(model.onnx.graph_name)
      const opsets = model.onnx.opset_import.map((o: {domain: string; version: number}) => ({
        domain: o.domain || 'ai.onnx',
        version: o.version,
      }))
      expect(info.opsetImports).to.deep.equal(opsets)
      expect(info.inputs.map(i => i.name)).to.deep.equal(model.onnx.graph_inputs)
      expect(info.outputs.map(o => o.name)).to.deep.equal(model.onnx.graph_outputs)
      expect(info.inputs[0]).to.deep.include({kind: 'tensor', elemType: 'float'})
      expect(info.inputs[0].shape?.at(-1)).to.equal(model.n_features)
    })
  }

  it('describes a ZipMap output as a sequence of maps and lists the ZipMap operator', () => {
    const info = readOnnxInfoFromFile(fixture('iris_svc.onnx'))
    expect(info.outputs[1]).to.deep.include({name: 'output_probability', kind: 'sequence', type: 'seq(map(int64,tensor(float)))'})
    expect(info.operators).to.include('ai.onnx.ml:ZipMap')
  })

  for (const bad of ['empty.onnx', 'random.onnx', 'truncated.onnx']) {
    it(`refuses ${bad} with InvalidOnnxError`, () => {
      expect(() => readOnnxInfoFromFile(fixture(bad))).to.throw(InvalidOnnxError)
    })
  }

  it('refuses a truncated file whose header still parses (cut inside the graph)', () => {
    const bytes = readFileSync(fixture('iris_logreg.onnx'))
    expect(() => readOnnxInfo(new BufferSource(bytes.subarray(0, bytes.length - 3)))).to.throw(
      InvalidOnnxError,
      /declares \d+ bytes but only \d+ remain/,
    )
  })

  it('skips initializers: reading a 64 MiB model touches under 1 MiB of it', () => {
    const path = join(tempDir(), 'big.onnx')
    writeSyntheticOnnx(path, 64 << 20)
    const file = new FileSource(path)
    let bytesRead = 0
    const counting: ByteSource = {
      size: file.size,
      read(offset, length) {
        bytesRead += Math.min(length, file.size - offset)
        return file.read(offset, length)
      },
    }
    const info = readOnnxInfo(counting)
    file.close()
    expect(info.inputs).to.deep.equal([{name: 'x', type: 'tensor(float)[N,4]', kind: 'tensor', elemType: 'float', shape: ['N', 4]}])
    expect(info.operators).to.deep.equal(['ai.onnx:Identity'])
    expect(bytesRead).to.be.lessThan(1 << 20)
  })
})
