import {expect} from 'chai'

import {type MlopsError, UsageError} from '../../src/errors.js'

/** The error a promise rejects with; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<MlopsError> {
  try {
    await promise
  } catch (error) {
    return error as MlopsError
  }

  throw new Error('expected a rejection')
}

/** The message of the error `run` throws, which must be a `type` (a usage error unless said); fails the test if it returns. */
export function refusal(run: () => unknown, type: abstract new (...args: never[]) => Error = UsageError): string {
  try {
    run()
  } catch (error) {
    expect(error).to.be.instanceOf(type)
    return (error as Error).message
  }

  throw new Error('not refused')
}
