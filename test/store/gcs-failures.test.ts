import {expect} from 'chai'
import {randomBytes} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {rejection} from '../helpers/assert.js'
import {inspectModelFile} from '../../src/store/model-file.js'
import {ModelStore} from '../../src/store/model-store.js'
import {openBackend} from '../../src/store/open.js'
import {FakeGcs} from '../env/fake-gcs.js'
import {sharedGcs} from '../env/global.js'
import {freePort} from '../env/ports.js'
import {fixture, listFiles, makeStore, randomFile, tempDir} from '../helpers/stores.js'

async function gcsStore(endpoint: string, uri: string, timeoutSeconds: number): Promise<ModelStore> {
  const settings = {uri, baseDir: '/', endpoint, anonymous: true, timeoutSeconds}
  return new ModelStore(await openBackend(settings), {timeoutMs: timeoutSeconds * 1000, chunkSize: 1 << 20, stallMs: 1000})
}

describe('GCS store failures (fake-gcs-server)', () => {
  it('bucket that does not exist: push and list fail with exit 3 naming the bucket, nothing written', async () => {
    const gcs = await sharedGcs()
    const bucket = `no-such-bucket-${randomBytes(4).toString('hex')}`
    const store = await gcsStore(gcs.url, `gs://${bucket}/models`, 5)
    const model = await inspectModelFile(fixture('iris_svc.onnx'))
    const workDir = tempDir()
    const push = await rejection(store.push({model, name: 'iris', metadata: {}, workDir}))
    expect(push.exitCode).to.equal(ExitCode.NOT_FOUND)
    expect(push.message).to.equal(`bucket ${bucket} does not exist`)
    // Nothing written: the push did not create the bucket on the way (so no object can be in it),
    // and the folder it ran in holds nothing new.
    const control = `${bucket}-control`
    await gcs.createBucket(control)
    const buckets = await gcs.listBuckets()
    expect(buckets).to.include(control)
    expect(buckets).to.not.include(bucket)
    expect(listFiles(workDir)).to.deep.equal([])
    const list = await rejection(store.listModels())
    expect(list.exitCode).to.equal(ExitCode.NOT_FOUND)
    const show = await rejection(store.resolve({name: 'iris', ref: 'latest'}))
    expect(show.exitCode).to.equal(ExitCode.NOT_FOUND)
    expect(show.message).to.match(new RegExp(`bucket ${bucket} does not exist`))
  })

  it('storage server down: bounded retries, then exit 7 naming the endpoint', async () => {
    const port = await freePort()
    const store = await gcsStore(`http://127.0.0.1:${port}`, 'gs://models', 2)
    const error = await rejection(store.listModels())
    expect(error.exitCode).to.equal(ExitCode.UNAVAILABLE)
    // The bound as the store reports it: several attempts, given up once the 2 s window closed.
    const gaveUp = new RegExp(
      `^listing gs://models at http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.*gave up after (\\d+) attempts in \\d+\\.\\ds`,
    ).exec(error.message)
    expect(gaveUp, error.message).to.not.equal(null)
    expect(Number(gaveUp![1])).to.be.at.least(2)
    expect(error.suggestion).to.match(/MLOPS_STORE_TIMEOUT/)
  })

  it('server killed in the middle of a pull: exit 7 and no partial file at the destination', async () => {
    const gcs = await FakeGcs.start()
    try {
      const fixtureStore = await makeStore('gcs', {}, gcs)
      const dir = tempDir()
      const file = randomFile(dir, 'big.bin', 24 * 1024 * 1024)
      await fixtureStore.store.push({model: await inspectModelFile(file), name: 'big', metadata: {}, workDir: dir})
      const store = await gcsStore(gcs.url, fixtureStore.uri, 2)
      const out = join(tempDir(), 'model.bin')
      // A previous model of some size: a download that wrote into it in place would change bytes of it.
      const previous = randomBytes(256 * 1024)
      writeFileSync(out, previous)
      let killed = false
      const error = await rejection(
        store.pull({
          ref: {name: 'big', ref: '1'},
          destination: out,
          onProgress(done) {
            if (!killed && done > 0) {
              killed = true
              gcs.kill()
            }
          },
        }),
      )
      expect(killed).to.equal(true)
      expect(error.exitCode).to.equal(ExitCode.UNAVAILABLE)
      expect(error.message).to.match(/downloading big@1/)
      // The old file, byte for byte, and no temp file of the download left beside it.
      expect(listFiles(dirname(out))).to.deep.equal(['model.bin'])
      expect(readFileSync(out).equals(previous), 'the destination holds exactly what it held before').to.equal(true)
    } finally {
      await gcs.stop()
    }
  })
})
