import {expect} from 'chai'

import {UnavailableError} from '../../src/errors.js'
import {isTransient, withRetry} from '../../src/util/retry.js'

const coded = (code: string | number, message = 'failed') => Object.assign(new Error(message), {code})

describe('retry rules', () => {
  describe('isTransient', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'EPIPE', 'UND_ERR_SOCKET', 'STALLED']) {
      it(`error code ${code} is transient`, () => {
        expect(isTransient(coded(code))).to.equal(true)
      })
    }

    for (const status of [408, 429, 500, 502, 503, 504]) {
      it(`HTTP ${status} (as code or status) is transient`, () => {
        expect(isTransient(coded(status))).to.equal(true)
        expect(isTransient(Object.assign(new Error('x'), {status}))).to.equal(true)
      })
    }

    for (const status of [400, 401, 403, 404, 409, 412]) {
      it(`HTTP ${status} is not transient, whatever the message says`, () => {
        expect(isTransient(coded(status, 'socket hang up'))).to.equal(false)
      })
    }

    it('an HTTP status decides before a transient code further down the cause chain', () => {
      expect(isTransient(Object.assign(new Error('forbidden'), {status: 403, cause: coded('ECONNRESET')}))).to.equal(false)
    })

    it('network messages without a code are transient: socket hang up, fetch failed, premature close, other side closed', () => {
      for (const message of ['socket hang up', 'TypeError: fetch failed', 'Premature close', 'other side closed', 'Network is unreachable'])
        expect(isTransient(new Error(message)), message).to.equal(true)
    })

    it('a transient cause makes the wrapper transient', () => {
      expect(isTransient(new Error('upload failed', {cause: new Error('inner', {cause: coded('ECONNRESET')})}))).to.equal(true)
    })

    it('ordinary errors, codes and non-errors are not transient', () => {
      expect(isTransient(new Error('invalid manifest'))).to.equal(false)
      expect(isTransient(coded('ENOENT'))).to.equal(false)
      expect(isTransient(coded('EACCES'))).to.equal(false)
      expect(isTransient(undefined)).to.equal(false)
      expect(isTransient('boom')).to.equal(false)
    })
  })

  describe('withRetry', () => {
    const realRandom = Math.random
    afterEach(() => {
      Math.random = realRandom
    })

    it('returns the first success, passing the attempt number', async () => {
      const seen: number[] = []
      const result = await withRetry(
        async n => {
          seen.push(n)
          if (n < 3) throw coded('ECONNRESET')
          return 'ok'
        },
        {timeoutMs: 5000, what: 'reading gs://b/x', initialDelayMs: 1},
      )
      expect(result).to.equal('ok')
      expect(seen).to.deep.equal([1, 2, 3])
    })

    it('a non-transient error is thrown at once, unchanged', async () => {
      const failure = coded(404, 'not found')
      let attempts = 0
      const thrown = await withRetry(
        async () => {
          attempts++
          throw failure
        },
        {timeoutMs: 5000, what: 'x', initialDelayMs: 1},
      ).catch(error => error)
      expect(thrown).to.equal(failure)
      expect(attempts).to.equal(1)
    })

    it('a closed window gives up after one attempt: UnavailableError naming what, the code and the cause', async () => {
      const cause = coded('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1')
      const error = (await withRetry(
        async () => {
          throw cause
        },
        {timeoutMs: 0, what: 'reading gs://b/iris/3/manifest.json'},
      ).catch(error_ => error_)) as UnavailableError
      expect(error).to.be.instanceOf(UnavailableError)
      expect(error.exitCode).to.equal(7)
      expect(error.message).to.equal(
        'reading gs://b/iris/3/manifest.json: connect ECONNREFUSED 127.0.0.1:1 (gave up after 1 attempt in 0.0s)',
      )
      expect(error.cause).to.equal(cause)
      expect(error.suggestion).to.equal(
        'check that the storage endpoint is reachable; store.timeout (MLOPS_STORE_TIMEOUT) sets how long to keep retrying',
      )
    })

    it('the code is prefixed when the message does not contain it; only the first line of the message is kept', async () => {
      const error = (await withRetry(
        async () => {
          throw coded('ECONNRESET', 'socket closed\n    at stack line')
        },
        {timeoutMs: 0, what: 'w'},
      ).catch(error_ => error_)) as UnavailableError
      expect(error.message).to.equal('w: ECONNRESET socket closed (gave up after 1 attempt in 0.0s)')
    })

    it('backoff: the delay doubles from initialDelayMs up to maxDelayMs, times a jitter factor of 0.5 to 1', async () => {
      // Jitter factor 1: waits of 20, 40, 40, 40 ms before attempts 2-5; without the cap 20, 40, 80, 160.
      Math.random = () => 1
      const waits: number[] = []
      await withRetry(
        async n => {
          if (n < 5) throw coded('ETIMEDOUT')
        },
        {timeoutMs: 10_000, what: 'x', initialDelayMs: 20, maxDelayMs: 40, sleep: async ms => waits.push(ms)},
      )
      expect(waits).to.deep.equal([20, 40, 40, 40])
    })

    it('backoff: a jitter factor of 0.5 halves each wait', async () => {
      Math.random = () => 0
      const waits: number[] = []
      await withRetry(
        async n => {
          if (n < 4) throw coded('ETIMEDOUT')
        },
        {timeoutMs: 10_000, what: 'x', initialDelayMs: 40, maxDelayMs: 1000, sleep: async ms => waits.push(ms)},
      )
      expect(waits).to.deep.equal([20, 40, 80])
    })

    it('the last wait is cut to what is left of the window, then one more attempt, then it gives up', async () => {
      Math.random = () => 1
      const seen: number[] = []
      const started = performance.now()
      const error = (await withRetry(
        async n => {
          seen.push(n)
          throw coded('ECONNRESET', 'reset')
        },
        {timeoutMs: 60, what: 'w', initialDelayMs: 10_000},
      ).catch(error_ => error_)) as UnavailableError
      // The 10 s wait was cut to the window (a bound on the wait, not a speed measure).
      expect(performance.now() - started).to.be.below(5000)
      expect(seen).to.deep.equal([1, 2])
      expect(error.message).to.match(/^w: ECONNRESET reset \(gave up after 2 attempts in 0\.\ds\)$/)
    })
  })
})
