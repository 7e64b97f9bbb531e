import {expect} from 'chai'

import {InvalidManifestError, type ModelManifest, parseAliasTarget, parseManifest, serializeManifest} from '../../src/store/manifest.js'

const SHA = 'ab'.repeat(32)
const VALID: ModelManifest = {
  schemaVersion: 1,
  name: 'iris',
  version: '3',
  file: 'model.onnx',
  format: 'onnx',
  size: 1024,
  sha256: SHA,
  crc32c: 'AAAAAA==',
  createdAt: '2024-01-01T00:00:00.000Z',
  createdBy: 'test',
  source: {file: 'iris.onnx'},
  metadata: {team: 'ml'},
}
const LABELS = {file: 'labels.json', sha256: SHA, size: 40, values: {0: 'setosa', 1: 'versicolor'}}

const bytes = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value))

function refusal(data: Buffer, expected?: {name: string; version: string}): string {
  try {
    parseManifest(data, expected)
  } catch (error) {
    expect(error).to.be.instanceOf(InvalidManifestError)
    return (error as Error).message
  }

  throw new Error('parseManifest accepted it')
}

describe('parseManifest: a stored manifest is checked before it is used', () => {
  it('a valid manifest, with and without labels, comes back as it was written', () => {
    expect(parseManifest(serializeManifest(VALID))).to.deep.equal(VALID)
    expect(parseManifest(serializeManifest({...VALID, labels: LABELS}), {name: 'iris', version: '3'})).to.deep.equal({
      ...VALID,
      labels: LABELS,
    })
  })

  it('serializeManifest writes indented JSON with a final newline', () => {
    const text = serializeManifest(VALID).toString('utf8')
    expect(text).to.equal(`${JSON.stringify(VALID, null, 2)}\n`)
  })

  it('a size of 0 is a byte count', () => {
    expect(parseManifest(bytes({...VALID, size: 0})).size).to.equal(0)
  })

  it('bad input: not JSON', () => {
    expect(refusal(bytes('{"name": '))).to.match(/^not JSON \(\S/)
  })

  it('bad input: JSON null, a list, or a required field missing or of the wrong type', () => {
    expect(refusal(bytes('null'))).to.equal('field "name" is missing or not a string')
    expect(refusal(bytes([VALID]))).to.equal('field "name" is missing or not a string')
    const {version: _, ...noVersion} = VALID
    expect(refusal(bytes(noVersion))).to.equal('field "version" is missing or not a string')
    expect(refusal(bytes({...VALID, file: 7}))).to.equal('field "file" is missing or not a string')
    expect(refusal(bytes({...VALID, sha256: null}))).to.equal('field "sha256" is missing or not a string')
    expect(refusal(bytes({...VALID, size: '1024'}))).to.equal('field "size" is missing or not a number')
  })

  for (const sha256 of ['ab', SHA.toUpperCase(), `${SHA}00`, 'g'.repeat(64)]) {
    it(`bad input sha256 "${sha256.slice(0, 12)}${sha256.length > 12 ? '...' : ''}" (${sha256.length} characters): not a hex SHA-256`, () => {
      expect(refusal(bytes({...VALID, sha256}))).to.equal('field "sha256" is not a hex SHA-256')
    })
  }

  for (const file of ['../model.onnx', '.', '..', 'a/b', '/etc/passwd', '.hidden', 'x'.repeat(129), '']) {
    it(`bad input file ${JSON.stringify(file.length > 20 ? `${file.slice(0, 10)}... (${file.length})` : file)}: not a plain file name`, () => {
      expect(refusal(bytes({...VALID, file}))).to.equal(`field "file" is not a plain file name: ${JSON.stringify(file.slice(0, 80))}`)
    })
  }

  for (const size of [-1, 1.5, 2 ** 53]) {
    it(`bad input size ${size}: not a byte count`, () => {
      expect(refusal(bytes({...VALID, size}))).to.equal('field "size" is not a byte count')
    })
  }

  it('bad input: a manifest of another version (copied), when the expected name and version are given', () => {
    expect(refusal(bytes(VALID), {name: 'iris', version: '4'})).to.equal('it describes "iris@3", not iris@4')
    expect(refusal(bytes(VALID), {name: 'wine', version: '3'})).to.equal('it describes "iris@3", not wine@3')
  })

  it('bad input labels: not an object, a path, not a SHA-256, not a byte count, or another file of the version', () => {
    expect(refusal(bytes({...VALID, labels: null}))).to.equal('field "labels" is not an object')
    expect(refusal(bytes({...VALID, labels: 'labels.json'}))).to.equal('field "labels" is not an object')
    expect(refusal(bytes({...VALID, labels: {...LABELS, file: '../labels.json'}}))).to.equal(
      'field "labels.file" is not a plain file name: "../labels.json"',
    )
    expect(refusal(bytes({...VALID, labels: {...LABELS, file: 5}}))).to.equal('field "labels.file" is not a plain file name: "5"')
    expect(refusal(bytes({...VALID, labels: {...LABELS, sha256: 'ab'}}))).to.equal('field "labels.sha256" is not a hex SHA-256')
    expect(refusal(bytes({...VALID, labels: {...LABELS, size: -5}}))).to.equal('field "labels.size" is not a byte count')
    expect(refusal(bytes({...VALID, labels: {...LABELS, file: 'model.onnx'}}))).to.equal(
      'field "labels.file" names another file of the version',
    )
    expect(refusal(bytes({...VALID, labels: {...LABELS, file: 'manifest.json'}}))).to.equal(
      'field "labels.file" names another file of the version',
    )
  })
})

describe('parseAliasTarget: an alias object names a version', () => {
  it('{"version": "3"} names 3', () => {
    expect(parseAliasTarget(bytes({version: '3', updatedAt: 'x'}))).to.equal('3')
  })

  it('bad input: not JSON', () => {
    expect(() => parseAliasTarget(bytes('prod'))).to.throw(InvalidManifestError, /^not JSON \(/)
  })

  for (const version of ['../3', '.3', '', 'a/b']) {
    it(`bad input version ${JSON.stringify(version)}: never leads out of the model's folder`, () => {
      expect(() => parseAliasTarget(bytes({version}))).to.throw(
        InvalidManifestError,
        `it names no valid version: ${JSON.stringify(version)}`,
      )
    })
  }

  it('bad input: no version, or a number', () => {
    expect(() => parseAliasTarget(bytes({}))).to.throw(InvalidManifestError, 'it names no valid version: "undefined"')
    expect(() => parseAliasTarget(bytes({version: 3}))).to.throw(InvalidManifestError, 'it names no valid version: "3"')
  })
})
