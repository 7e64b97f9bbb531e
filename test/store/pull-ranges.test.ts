import {expect} from 'chai'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import type {StorageBackend} from '../../src/store/backend.js'
import {inspectModelFile} from '../../src/store/model-file.js'
import {ModelStore} from '../../src/store/model-store.js'
import {openBackend} from '../../src/store/open.js'
import {rejection} from '../helpers/assert.js'
import {writeSyntheticOnnx} from '../helpers/onnx-writer.js'
import {STORE_KINDS, listFiles, makeStore, tempDir} from '../helpers/stores.js'

const CHUNK = 256 * 1024
/** Weights of six ranges and a bit. */
const SIZE = 5 * CHUNK + 321

/** Sends what the store sends instead of `chunk`, a chunk of the second range, on attempt 1, 2, ... of it. */
type Tamper = (chunk: Buffer, attempt: number, send: (chunk: Buffer) => void) => void

/**
 * A store whose ranged reads of the second range go through `tamper`; the
 * others, and everything else, are the real backend's. Pulls write each
 * chunk into the file as it arrives: these are the failures that path must
 * survive or refuse.
 */
async function tamperedStore(kind: (typeof STORE_KINDS)[number], tamper: Tamper): Promise<{store: ModelStore; model: Buffer}> {
  const s = await makeStore(kind)
  const dir = tempDir()
  const file = join(dir, 'model.onnx')
  writeSyntheticOnnx(file, SIZE)
  await s.store.push({model: await inspectModelFile(file), name: 'big', metadata: {}, workDir: dir})
  const backend = await openBackend(s.settings)
  const attempts = new Map<number, number>()
  const readRange: StorageBackend['readRange'] = async (key, generation, start, end, onData, signal) => {
    const attempt = (attempts.get(start) ?? 0) + 1
    attempts.set(start, attempt)
    return backend.readRange(
      key,
      generation,
      start,
      end,
      chunk => (start === CHUNK ? tamper(chunk, attempt, onData) : onData(chunk)),
      signal,
    )
  }

  const tampered = new Proxy(backend, {get: (target, name) => (name === 'readRange' ? readRange : Reflect.get(target, name, target))})
  return {store: new ModelStore(tampered, {timeoutMs: 5000, chunkSize: CHUNK, concurrency: 3}), model: readFileSync(file)}
}

for (const kind of STORE_KINDS) {
  describe(`pull of a ranged download whose bytes go straight into the file (${kind})`, () => {
    it('a range that sends wrong bytes and then breaks is fetched again over them: the file is the stored model', async () => {
      let wrong = 0
      const {store, model} = await tamperedStore(kind, (chunk, attempt, send) => {
        if (attempt > 1) return send(chunk)
        // Wrong bytes reach the file before the break: the retry must write over them.
        const garbage = Buffer.alloc(Math.ceil(chunk.length / 2), 0xee)
        send(garbage)
        wrong += garbage.length
        throw Object.assign(new Error('connection reset by the test'), {code: 'ECONNRESET'})
      })
      const dir = tempDir()
      const result = await store.pull({ref: {name: 'big', ref: '1'}, destination: join(dir, 'model.onnx')})
      expect(wrong, 'the first attempt of the range sent wrong bytes').to.be.greaterThan(0)
      expect(result).to.include({bytes: model.length, skipped: false})
      expect(readFileSync(join(dir, 'model.onnx')).equals(model), 'the pulled file is the stored model, byte for byte').to.equal(true)
      expect(listFiles(dir)).to.deep.equal(['model.onnx'])
    })

    it('a range whose bytes are corrupt on every attempt: exit 5, the destination untouched, no temp file left', async () => {
      const {store} = await tamperedStore(kind, (chunk, _attempt, send) => {
        const corrupt = Buffer.from(chunk)
        corrupt[0] ^= 0xff
        send(corrupt)
      })
      const dir = tempDir()
      writeFileSync(join(dir, 'model.onnx'), 'previous model')
      const error = await rejection(store.pull({ref: {name: 'big', ref: '1'}, destination: join(dir, 'model.onnx')}))
      expect(error.exitCode).to.equal(ExitCode.INTEGRITY)
      expect(error.message).to.match(
        /^big@1: downloaded content has sha256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}; the stored object is corrupt$/,
      )
      expect(readFileSync(join(dir, 'model.onnx'), 'utf8')).to.equal('previous model')
      expect(listFiles(dir)).to.deep.equal(['model.onnx'])
    })
  })
}
