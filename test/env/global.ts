import {FakeGcs} from './fake-gcs.js'

/**
 * One GCS emulator for the whole run (tests that kill a server start their
 * own). Each test uses a bucket of its own, so tests do not see each other.
 */
let shared: FakeGcs | undefined

export async function sharedGcs(): Promise<FakeGcs> {
  shared ??= await FakeGcs.start()
  return shared
}

export const mochaHooks = {
  async afterAll(): Promise<void> {
    await shared?.stop()
  },
}
