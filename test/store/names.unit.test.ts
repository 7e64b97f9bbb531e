import {expect} from 'chai'

import {UsageError} from '../../src/errors.js'
import {LATEST, compareVersions, formatRef, parseModelRef, validateName} from '../../src/store/names.js'

function refusal(run: () => unknown): UsageError {
  try {
    run()
  } catch (error) {
    expect(error).to.be.instanceOf(UsageError)
    return error as UsageError
  }

  throw new Error('no error thrown')
}

const RULE = 'use 1-64 characters from A-Z a-z 0-9 . _ -, not starting with "."'

describe('model names and refs (NAME@REF)', () => {
  describe('parseModelRef', () => {
    for (const [text, name, ref] of [
      ['iris@3', 'iris', '3'],
      ['iris@1.10.0', 'iris', '1.10.0'],
      ['iris@prod', 'iris', 'prod'],
      ['iris@latest', 'iris', 'latest'],
      ['Iris_v2-x.onnx@v_1-rc.2', 'Iris_v2-x.onnx', 'v_1-rc.2'],
      [`${'n'.repeat(64)}@${'v'.repeat(64)}`, 'n'.repeat(64), 'v'.repeat(64)],
    ] as const) {
      it(`"${text.length > 40 ? `${text.slice(0, 20)}...` : text}" is ${name.length > 40 ? '64 characters' : name} at ${ref.length > 40 ? '64 characters' : ref}`, () => {
        expect(parseModelRef(text)).to.deep.equal({name, ref})
      })
    }

    it('NAME alone takes the default ref when one is given', () => {
      expect(parseModelRef('iris', {defaultRef: LATEST})).to.deep.equal({name: 'iris', ref: 'latest'})
      expect(parseModelRef('iris', {defaultRef: 'prod'})).to.deep.equal({name: 'iris', ref: 'prod'})
    })

    it('an explicit ref wins over the default', () => {
      expect(parseModelRef('iris@2', {defaultRef: LATEST})).to.deep.equal({name: 'iris', ref: '2'})
    })

    it('bad input: NAME alone without a default names no version, with an example and the list command', () => {
      const error = refusal(() => parseModelRef('iris'))
      expect(error.message).to.equal('"iris" names no version: use NAME@VERSION')
      expect(error.suggestion).to.equal('e.g. iris@1; list versions with: mlops model list iris')
    })

    it('bad input "iris@": an empty version', () => {
      expect(refusal(() => parseModelRef('iris@', {defaultRef: LATEST})).message).to.equal(`invalid version "" (0 characters): ${RULE}`)
    })

    it('bad input "@3": an empty model name', () => {
      expect(refusal(() => parseModelRef('@3')).message).to.equal(`invalid model name "" (0 characters): ${RULE}`)
    })

    it('bad input "iris@3@4": the first "@" splits, "3@4" is not a version', () => {
      expect(refusal(() => parseModelRef('iris@3@4')).message).to.equal(`invalid version "3@4" (3 characters): ${RULE}`)
    })

    it('bad input ".iris@1" and "iris@.1": a leading dot', () => {
      expect(refusal(() => parseModelRef('.iris@1')).message).to.equal(`invalid model name ".iris" (5 characters): ${RULE}`)
      expect(refusal(() => parseModelRef('iris@.1')).message).to.equal(`invalid version ".1" (2 characters): ${RULE}`)
    })

    it('bad input "../iris@1", "ir is@1", "iris/x@1": path separators and spaces', () => {
      expect(refusal(() => parseModelRef('../iris@1')).message).to.equal(`invalid model name "../iris" (7 characters): ${RULE}`)
      expect(refusal(() => parseModelRef('ir is@1')).message).to.equal(`invalid model name "ir is" (5 characters): ${RULE}`)
      expect(refusal(() => parseModelRef('iris/x@1')).message).to.equal(`invalid model name "iris/x" (6 characters): ${RULE}`)
    })

    it('bad input: a 65-character name', () => {
      const name = 'n'.repeat(65)
      expect(refusal(() => parseModelRef(`${name}@1`)).message).to.equal(`invalid model name "${name}" (65 characters): ${RULE}`)
    })

    it('bad input: a very long name is shown cut to 67 characters and "..."', () => {
      const name = 'n'.repeat(200)
      expect(refusal(() => parseModelRef(`${name}@1`)).message).to.equal(
        `invalid model name "${'n'.repeat(67)}..." (200 characters): ${RULE}`,
      )
    })

    it('bad input: the reserved model names "latest" and "aliases"', () => {
      expect(refusal(() => parseModelRef('latest@1')).message).to.equal('"latest" is reserved and cannot be used as a model name')
      expect(refusal(() => parseModelRef('aliases@1')).message).to.equal('"aliases" is reserved and cannot be used as a model name')
    })

    for (const url of ['http://user:secret@host/iris@1', 'gs://bucket/iris@1', 'file:///tmp/store', 'HTTPS://x@y']) {
      it(`bad input "${url}": a URL is refused without echoing it (it may carry a password)`, () => {
        const error = refusal(() => parseModelRef(url, {defaultRef: LATEST}))
        expect(error.message).to.equal('a model ref is NAME@VERSION (or @ALIAS, @latest), not a URL')
        expect(error.suggestion).to.equal('e.g. iris@3; the store is --store / MLOPS_STORE')
      })
    }
  })

  describe('validateName', () => {
    it('returns a valid name unchanged', () => {
      expect(validateName('model name', 'iris')).to.equal('iris')
      expect(validateName('version', '3')).to.equal('3')
      expect(validateName('alias', 'prod-2')).to.equal('prod-2')
    })

    it('bad input: "latest" and "aliases" as a version or an alias, with the right article', () => {
      expect(refusal(() => validateName('version', 'latest')).message).to.equal('"latest" is reserved and cannot be used as a version')
      expect(refusal(() => validateName('alias', 'aliases')).message).to.equal('"aliases" is reserved and cannot be used as an alias')
    })

    it('bad input "12" as an alias: a plain number reads as a version', () => {
      expect(refusal(() => validateName('alias', '12')).message).to.equal(
        'invalid alias "12": an alias cannot be a plain number, which reads as a version',
      )
    })

    it('a plain number is a fine version, and an alias may contain digits', () => {
      expect(validateName('version', '12')).to.equal('12')
      expect(validateName('alias', 'v12')).to.equal('v12')
    })
  })

  it('formatRef joins NAME@REF', () => {
    expect(formatRef({name: 'iris', ref: 'prod'})).to.equal('iris@prod')
  })

  it('compareVersions orders numbers as people do: 2 < 10, 1.9.0 < 1.10.0', () => {
    expect(['10', '2', '1.10.0', '1.9.0', '1'].sort(compareVersions)).to.deep.equal(['1', '1.9.0', '1.10.0', '2', '10'])
    expect(compareVersions('3', '3')).to.equal(0)
  })
})
