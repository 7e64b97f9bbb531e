import {expect} from 'chai'

import {parseDuration} from '../../src/util/duration.js'
import {UsageError} from '../../src/errors.js'

describe('parseDuration (deploy --timeout)', () => {
  for (const [text, ms] of [
    ['90', 90_000],
    ['90s', 90_000],
    ['1s', 1000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['1h30m15s', 5_415_000],
    ['2m30s', 150_000],
    ['90m', 5_400_000],
    [' 5m ', 300_000],
  ] as const) {
    it(`"${text}" is ${ms} ms`, () => {
      expect(parseDuration(text)).to.equal(ms)
    })
  }

  it('a bare number after minutes or hours counts as seconds (current behaviour): "5m30" is 5m30s, "1h30" is 1h0m30s, not 1h30m', () => {
    expect(parseDuration('5m30')).to.equal(330_000)
    expect(parseDuration('1h30')).to.equal(3_630_000)
  })

  function refusal(text: string): UsageError {
    try {
      parseDuration(text)
    } catch (error) {
      expect(error).to.be.instanceOf(UsageError)
      return error as UsageError
    }

    throw new Error(`parseDuration(${JSON.stringify(text)}) did not throw`)
  }

  for (const text of ['', ' ', '5x', '-1m', '1.5m', 'm', 's', '5 m', '30s5m', '1d', 'abc']) {
    it(`bad input ${JSON.stringify(text)}: refused as a usage error with an example`, () => {
      const error = refusal(text)
      expect(error.message).to.equal(`invalid --timeout "${text}": use e.g. 90s, 5m or 1h30m`)
      expect(error.exitCode).to.equal(2)
    })
  }

  for (const text of ['0', '0s', '0h0m0s']) {
    it(`bad input "${text}": a zero duration is refused`, () => {
      expect(refusal(text).message).to.equal(`invalid --timeout "${text}": it must be more than 0`)
    })
  }
})
