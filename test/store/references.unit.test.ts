import {expect} from 'chai'

import {REFERENCE_MAX_ROWS, makeReference, parseReference} from '../../src/store/references.js'

const MANIFEST = {name: 'iris', version: '1', sha256: 'd'.repeat(64)}
const good = () =>
  makeReference(MANIFEST, {
    runtime: 'onnxruntime-node 1.30.0',
    inputs: [
      [5.1, 3.5, 1.4, 0.2],
      [6.2, 3.4, 5.4, 2.3],
    ],
    outputs: [
      {label: 'setosa', prediction: [0.97, 0.02, 0.01]},
      {label: 'virginica', prediction: [0.01, 0.02, 0.97]},
    ],
  })
const bytes = (value: unknown) => Buffer.from(JSON.stringify(value))

describe('reference sets: the store record', () => {
  it('a record made for a version parses back as it was', () => {
    const record = good()
    expect(parseReference(bytes(record), MANIFEST)).to.deep.equal(record)
    expect(record).to.include({rows: 2, runtime: 'onnxruntime-node 1.30.0', modelSha256: MANIFEST.sha256})
    expect(record.sha256).to.match(/^[0-9a-f]{64}$/)
  })

  it('the sha256 covers the runtime and the model: another runtime gives another digest', () => {
    const other = makeReference(MANIFEST, {...good(), runtime: 'onnxruntime-node 1.31.0'})
    expect(other.sha256).to.not.equal(good().sha256)
  })

  for (const [name, change, message] of [
    ['an input value changed', (r: any) => (r.inputs[0][0] = 9.9), /its rows have sha256 \w+ .*not the recorded/],
    ['an output label changed', (r: any) => (r.outputs[1].label = 'setosa'), /its rows have sha256/],
    ['a runtime changed', (r: any) => (r.runtime = 'onnxruntime-node 9.9.9'), /its rows have sha256/],
    ['a sha256 that is not hex', (r: any) => (r.sha256 = 'x'.repeat(64)), /sha256 is not a hex SHA-256/],
    ['a size that is negative', (r: any) => (r.size = -1), /size is not a byte count/],
    ['another version', (r: any) => (r.version = '2'), /describes "iris@2", not iris@1/],
    ['another model file', (r: any) => (r.modelSha256 = 'e'.repeat(64)), /computed for another model file/],
    ['a schemaVersion from the future', (r: any) => (r.schemaVersion = 2), /schemaVersion is not 1/],
    ['a runtime with a newline', (r: any) => (r.runtime = 'onnxruntime\nx'), /runtime is not a runtime name/],
    ['rows that do not count the inputs', (r: any) => (r.rows = 3), /rows is not the number of inputs/],
    ['an input row of strings', (r: any) => (r.inputs[1] = ['a', 'b']), /inputs\[1\] is not a list of numbers/],
    ['no inputs', (r: any) => (r.inputs = []), /inputs is not a list of 1 to/],
    ['an output missing', (r: any) => r.outputs.pop(), /outputs is not a list of 2 results/],
    ['an output with an extra key', (r: any) => (r.outputs[0].script = 'x'), /outputs\[0\] is not \{"label", "prediction"\}/],
    ['an output label that is an object', (r: any) => (r.outputs[0].label = {}), /outputs\[0\].label is not a label/],
    ['a prediction that is null', (r: any) => (r.outputs[0].prediction = null), /outputs\[0\].prediction is not a tensor value/],
  ] as const) {
    it(`bad record: ${name} → refused`, () => {
      const record = structuredClone(good())
      change(record)
      expect(() => parseReference(bytes(record), MANIFEST)).to.throw(message)
    })
  }

  it('bad record: not JSON → refused', () => {
    expect(() => parseReference(Buffer.from('{"rows": '), MANIFEST)).to.throw(/^not JSON/)
  })

  it('bad record: a list, not an object → refused', () => {
    expect(() => parseReference(bytes([good()]), MANIFEST)).to.throw('not a JSON object')
  })

  it(`bad record: more than ${REFERENCE_MAX_ROWS} rows → refused`, () => {
    const record: any = good()
    record.inputs = Array.from({length: REFERENCE_MAX_ROWS + 1}, () => [1])
    expect(() => parseReference(bytes(record), MANIFEST)).to.throw(/inputs is not a list of 1 to 10000 rows/)
  })

  it('bad record: a prediction nested deeper than a tensor → refused', () => {
    const record: any = good()
    let deep: unknown = 1
    for (let i = 0; i < 20; i++) deep = [deep]
    record.outputs[0].prediction = deep
    expect(() => parseReference(bytes(record), MANIFEST)).to.throw(/outputs\[0\].prediction is not a tensor value/)
  })
})
