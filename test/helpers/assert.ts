import type {MlopsError} from '../../src/errors.js'

/** The error a promise rejects with; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<MlopsError> {
  try {
    await promise
  } catch (error) {
    return error as MlopsError
  }

  throw new Error('expected a rejection')
}
