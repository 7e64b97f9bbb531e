import {expect} from 'chai'
import {createHash} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode, type MlopsError} from '../../src/errors.js'
import {rejection} from '../helpers/assert.js'
import {inspectModelFile} from '../../src/store/model-file.js'
import type {PushRequest} from '../../src/store/model-store.js'
import {STORE_KINDS, type StoreFixture, expected, fixture, listFiles, makeStore, randomFile, tempDir} from '../helpers/stores.js'

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

async function pushRequest(file: string, overrides: Partial<PushRequest> = {}, labels?: string): Promise<PushRequest> {
  return {model: await inspectModelFile(file, labels), name: 'iris', metadata: {}, workDir: tempDir(), ...overrides}
}

for (const kind of STORE_KINDS) {
  describe(`model store (${kind})`, () => {
    let s: StoreFixture

    beforeEach(async () => {
      s = await makeStore(kind)
    })

    it('numbers versions 1, 2, 3 and records a manifest with checksums, labels and the ONNX signature', async () => {
      const file = fixture('iris_svc.onnx')
      const first = await s.store.push(await pushRequest(file, {metadata: {accuracy: '0.97'}}, fixture('iris_labels.json')))
      const second = await s.store.push(await pushRequest(fixture('iris_rf.onnx')))
      const third = await s.store.push(await pushRequest(fixture('iris_logreg.onnx')))
      expect([first.version, second.version, third.version]).to.deep.equal(['1', '2', '3'])

      const manifest = await s.store.resolve({name: 'iris', ref: '1'})
      const bytes = readFileSync(file)
      expect(manifest).to.include({
        name: 'iris',
        version: '1',
        file: 'model.onnx',
        size: bytes.length,
        sha256: sha256(bytes),
        format: 'onnx',
      })
      expect(manifest.crc32c).to.match(/^[A-Za-z0-9+/]{6}==$/)
      expect(manifest.source.file).to.equal('iris_svc.onnx')
      expect(manifest.metadata).to.deep.equal({accuracy: '0.97'})
      expect(manifest.labels?.values).to.deep.equal(expected.labels)
      const onnx = expected.models['iris_svc.onnx'].onnx
      expect(manifest.onnx?.irVersion).to.equal(onnx.ir_version)
      expect(manifest.onnx?.producerName).to.equal(onnx.producer_name)
      expect(manifest.onnx?.inputs.map(i => i.name)).to.deep.equal(onnx.graph_inputs)
      expect(manifest.onnx?.outputs.map(o => o.name)).to.deep.equal(onnx.graph_outputs)
      expect(await s.keys()).to.include.members(['iris/1/model.onnx', 'iris/1/labels.json', 'iris/1/manifest.json'])
      if (kind === 'gcs') expect(manifest.crc32c).to.equal(await gcsCrc32c(s, 'iris/1/model.onnx'))
    })

    it('pushing an existing version fails with exit 4 and changes nothing', async () => {
      await s.store.push(await pushRequest(fixture('iris_svc.onnx'), {version: '1'}))
      const before = await s.read('iris/1/manifest.json')
      const keys = await s.keys()
      const error = await rejection(s.store.push(await pushRequest(fixture('iris_rf.onnx'), {version: '1'})))
      expect(error.exitCode).to.equal(ExitCode.CONFLICT)
      expect(error.message).to.match(/iris@1 already exists/)
      expect(await s.read('iris/1/manifest.json')).to.deep.equal(before)
      expect(await s.keys()).to.deep.equal(keys)
    })

    /** Pulls `ref` back into a fresh folder: the bytes a loader would get. */
    async function pulledBytes(ref: string): Promise<Buffer> {
      const destination = join(tempDir(), 'model.onnx')
      await s.store.pull({ref: {name: 'iris', ref}, destination})
      return readFileSync(destination)
    }

    it('concurrent push of one version with different content (iris_svc, iris_rf as 7): exactly one succeeds, its bytes are stored, nothing else is left', async () => {
      const files = [fixture('iris_svc.onnx'), fixture('iris_rf.onnx')]
      const results = await Promise.allSettled(files.map(async file => s.store.push(await pushRequest(file, {version: '7'}))))
      expect(results.filter(r => r.status === 'fulfilled')).to.have.length(1)
      const failure = results.find(r => r.status === 'rejected') as PromiseRejectedResult
      expect((failure.reason as MlopsError).exitCode).to.equal(ExitCode.CONFLICT)
      const winnerIndex = results.findIndex(r => r.status === 'fulfilled')
      const winner = (results[winnerIndex] as PromiseFulfilledResult<{sha256: string}>).value
      const winnerBytes = readFileSync(files[winnerIndex])
      expect(winner.sha256).to.equal(sha256(winnerBytes))
      const manifest = await s.store.resolve({name: 'iris', ref: '7'})
      expect(manifest.sha256).to.equal(winner.sha256)
      expect((await s.read('iris/7/model.onnx'))!.equals(winnerBytes), "the stored object is the winner's file").to.equal(true)
      expect((await pulledBytes('7')).equals(winnerBytes), "a pull gets the winner's file").to.equal(true)
      // Neither the loser's object nor a temp file or lock of either push is left.
      expect(await s.keys()).to.deep.equal(['iris/7/manifest.json', 'iris/7/model.onnx'])
    })

    it('concurrent push of one version with the same content (iris_svc with labels as 1, three times): exactly one succeeds, the model and labels stay stored, nothing else is left', async () => {
      const bytes = readFileSync(fixture('iris_svc.onnx'))
      const results = await Promise.allSettled(
        [1, 2, 3].map(async () => s.store.push(await pushRequest(fixture('iris_svc.onnx'), {version: '1'}, fixture('iris_labels.json')))),
      )
      expect(results.filter(r => r.status === 'fulfilled')).to.have.length(1)
      const failures = results.filter(r => r.status === 'rejected')
      expect(failures).to.have.length(2)
      for (const r of failures) expect((r.reason as MlopsError).exitCode).to.equal(ExitCode.CONFLICT)
      expect((await s.store.resolve({name: 'iris', ref: '1'})).sha256).to.equal(sha256(bytes))
      expect((await s.read('iris/1/model.onnx'))!.equals(bytes)).to.equal(true)
      expect((await pulledBytes('1')).equals(bytes)).to.equal(true)
      // A losing push must not take back the objects the winner adopted from it.
      const dir = tempDir()
      await s.store.pull({ref: {name: 'iris', ref: '1'}, destination: `${dir}/`, labelsDestination: `${dir}/`})
      expect(JSON.parse(readFileSync(join(dir, 'labels.json'), 'utf8'))).to.deep.equal(expected.labels)
      expect(await s.keys()).to.deep.equal(['iris/1/labels.json', 'iris/1/manifest.json', 'iris/1/model.onnx'])
    })

    it('concurrent pushes without --version (iris_svc, iris_rf, iris_logreg) get distinct versions, each with its own bytes, nothing else left', async () => {
      const files = [fixture('iris_svc.onnx'), fixture('iris_rf.onnx'), fixture('iris_logreg.onnx')]
      const results = await Promise.all(files.map(async file => s.store.push(await pushRequest(file))))
      expect(results.map(r => r.version).sort()).to.deep.equal(['1', '2', '3'])
      for (const [i, r] of results.entries()) {
        const bytes = readFileSync(files[i])
        expect(r.sha256).to.equal(sha256(bytes))
        expect((await s.store.resolve({name: 'iris', ref: r.version})).sha256).to.equal(r.sha256)
        expect((await s.read(`iris/${r.version}/model.onnx`))!.equals(bytes), `iris@${r.version} holds ${files[i]}`).to.equal(true)
        expect((await pulledBytes(r.version)).equals(bytes)).to.equal(true)
      }

      expect(await s.keys()).to.deep.equal(['1', '2', '3'].flatMap(v => [`iris/${v}/manifest.json`, `iris/${v}/model.onnx`]))
    })

    it('resolves latest by numeric order (10 after 9), aliases, and reports unknown name / version / alias with exit 3', async () => {
      for (const version of ['9', '10', '2']) await s.store.push(await pushRequest(fixture('iris_svc.onnx'), {version}))
      expect((await s.store.resolve({name: 'iris', ref: 'latest'})).version).to.equal('10')
      await s.store.setAlias({name: 'iris', ref: '9'}, 'prod')
      expect((await s.store.resolve({name: 'iris', ref: 'prod'})).version).to.equal('9')

      const unknownName = await rejection(s.store.resolve({name: 'irsi', ref: 'latest'}))
      expect(unknownName.exitCode).to.equal(ExitCode.NOT_FOUND)
      expect(unknownName.message).to.match(/model "irsi" not found/)
      expect(unknownName.suggestion).to.match(/did you mean "iris"/)
      const unknownVersion = await rejection(s.store.resolve({name: 'iris', ref: '11'}))
      expect(unknownVersion.exitCode).to.equal(ExitCode.NOT_FOUND)
      expect(unknownVersion.suggestion).to.equal('versions: 2, 9, 10; aliases: prod')
      const unknownAlias = await rejection(s.store.resolve({name: 'iris', ref: 'staging'}))
      expect(unknownAlias.exitCode).to.equal(ExitCode.NOT_FOUND)
    })

    it('moves, lists and removes aliases; an alias of a missing version is refused', async () => {
      await s.store.push(await pushRequest(fixture('iris_svc.onnx')))
      await s.store.push(await pushRequest(fixture('iris_rf.onnx')))
      expect(await s.store.setAlias({name: 'iris', ref: '1'}, 'prod')).to.include({version: '1', previous: undefined})
      expect(await s.store.setAlias({name: 'iris', ref: 'latest'}, 'prod')).to.include({version: '2', previous: '1'})
      expect((await s.store.listVersions('iris')).aliases).to.deep.equal({prod: '2'})
      expect((await s.store.listModels())[0]).to.deep.include({name: 'iris', versions: 2, latest: '2', aliases: {prod: '2'}})
      expect((await rejection(s.store.setAlias({name: 'iris', ref: '5'}, 'prod'))).exitCode).to.equal(ExitCode.NOT_FOUND)
      await s.store.removeAlias('iris', 'prod')
      expect((await s.store.listVersions('iris')).aliases).to.deep.equal({})
      expect((await rejection(s.store.removeAlias('iris', 'prod'))).exitCode).to.equal(ExitCode.NOT_FOUND)
    })

    it('concurrent alias updates (six writers, versions 1-6) each land once, in one sequence: no update is lost, the alias is one whole write', async () => {
      const versions = ['1', '2', '3', '4', '5', '6']
      for (const version of versions) await s.store.push(await pushRequest(fixture('iris_svc.onnx'), {version}))
      const results = await Promise.all(versions.map(ref => s.store.setAlias({name: 'iris', ref}, 'prod')))
      expect(results.map(r => r.version)).to.deep.equal(versions)
      // setAlias is a compare-and-swap on the alias object: each update replaced exactly what it
      // reports as previous. Every update landing once means the updates form one chain: one of them
      // created the alias, every other replaced a different earlier update, and the last one is what
      // the alias holds now. Two updates that replaced the same value are a lost update.
      const previous = results.map(r => r.previous)
      expect(
        previous.filter(p => p === undefined),
        'exactly one update created the alias',
      ).to.have.length(1)
      const replaced = previous.filter((p): p is string => p !== undefined)
      expect(new Set(replaced).size, `each update replaced a different one (previous values: ${replaced.join(', ')})`).to.equal(
        replaced.length,
      )
      const final = (await s.store.resolve({name: 'iris', ref: 'prod'})).version
      expect([...replaced, final].sort()).to.deep.equal([...versions].sort())
      // Following the chain from the update that created the alias reaches the final value through every update.
      const next = new Map(results.filter(r => r.previous !== undefined).map(r => [r.previous!, r.version]))
      const chain = [results.find(r => r.previous === undefined)!.version]
      while (next.has(chain.at(-1)!)) chain.push(next.get(chain.at(-1)!)!)
      expect(chain).to.have.length(versions.length)
      expect(chain.at(-1)).to.equal(final)
      // One whole write: the object parses as one alias record, and no temp file or lock is left.
      const alias = JSON.parse((await s.read('iris/aliases/prod'))!.toString('utf8'))
      expect(alias).to.have.keys(['version', 'updatedAt'])
      expect(alias.version).to.equal(final)
      expect((await s.keys()).filter(k => k.startsWith('iris/aliases/'))).to.deep.equal(['iris/aliases/prod'])
    })

    it('rm refuses while an alias points at the version (exit 4), asks before deleting, then deletes', async () => {
      await s.store.push(await pushRequest(fixture('iris_svc.onnx'), {}, fixture('iris_labels.json')))
      await s.store.setAlias({name: 'iris', ref: '1'}, 'prod')
      const keys = await s.keys()
      const refused = await rejection(s.store.remove('iris', '1', async () => true))
      expect(refused.exitCode).to.equal(ExitCode.CONFLICT)
      expect(refused.suggestion).to.equal('mlops model alias rm iris prod')
      await s.store.removeAlias('iris', 'prod')
      expect(await s.store.remove('iris', '1', async () => false)).to.equal(undefined)
      expect(await s.keys()).to.deep.equal(keys.filter(k => !k.includes('aliases')))
      const removed = await s.store.remove('iris', '1', async () => true)
      expect(removed?.deleted[0]).to.equal('iris/1/manifest.json')
      expect(await s.keys()).to.deep.equal([])
      expect((await rejection(s.store.remove('iris', '1', async () => true))).exitCode).to.equal(ExitCode.NOT_FOUND)
    })

    it('pulls a verified copy, then reports up to date without downloading', async () => {
      await s.store.push(await pushRequest(fixture('iris_svc.onnx'), {}, fixture('iris_labels.json')))
      const dir = tempDir()
      const first = await s.store.pull({
        ref: {name: 'iris', ref: 'latest'},
        destination: join(dir, 'model.onnx'),
        labelsDestination: `${dir}/`,
      })
      expect(first).to.include({version: '1', skipped: false, bytes: 2486})
      expect(readFileSync(join(dir, 'model.onnx'))).to.deep.equal(readFileSync(fixture('iris_svc.onnx')))
      expect(JSON.parse(readFileSync(join(dir, 'labels.json'), 'utf8'))).to.deep.equal(expected.labels)
      const second = await s.store.pull({ref: {name: 'iris', ref: '1'}, destination: dir})
      expect(second).to.include({skipped: true, bytes: 0, path: join(dir, 'model.onnx')})
      expect(listFiles(dir)).to.deep.equal(['labels.json', 'model.onnx'])
    })

    it('pulls a large object as parallel ranged reads and verifies it', async () => {
      const ranged = await makeStore(kind, {chunkSize: 256 * 1024, concurrency: 3}, s.gcs)
      const dir = tempDir()
      const file = randomFile(dir, 'big.bin', 3 * 1024 * 1024 + 123)
      await ranged.store.push(await pushRequest(file))
      const progress: number[] = []
      const result = await ranged.store.pull({
        ref: {name: 'iris', ref: '1'},
        destination: join(dir, 'out.bin'),
        onProgress: done => progress.push(done),
      })
      expect(result.bytes).to.equal(3 * 1024 * 1024 + 123)
      expect(readFileSync(join(dir, 'out.bin'))).to.deep.equal(readFileSync(file))
      expect(progress.at(-1)).to.equal(result.bytes)
    })

    it('object corrupted in the store after push: pull fails with exit 5 and the destination is untouched', async () => {
      await s.store.push(await pushRequest(fixture('iris_svc.onnx')))
      const original = readFileSync(fixture('iris_svc.onnx'))
      const corrupted = Buffer.from(original)
      corrupted[100] ^= 0xff
      await s.corrupt('iris/1/model.onnx', corrupted)
      const dir = tempDir()
      writeFileSync(join(dir, 'model.onnx'), 'previous model')
      const error = await rejection(s.store.pull({ref: {name: 'iris', ref: '1'}, destination: join(dir, 'model.onnx')}))
      expect(error.exitCode).to.equal(ExitCode.INTEGRITY)
      expect(error.message).to.match(/corrupt/)
      expect(readFileSync(join(dir, 'model.onnx'), 'utf8')).to.equal('previous model')
      expect(listFiles(dir)).to.deep.equal(['model.onnx'])
    })

    it('model file changed during push → exit 5, nothing committed', async () => {
      const dir = tempDir()
      const file = join(dir, 'model.onnx')
      writeFileSync(file, readFileSync(fixture('iris_svc.onnx')))
      const request = await pushRequest(file, {
        onProgress() {
          writeFileSync(file, readFileSync(fixture('iris_rf.onnx')))
        },
      })
      const error = await rejection(s.store.push(request))
      expect(error.exitCode).to.equal(ExitCode.INTEGRITY)
      expect(error.message).to.match(/changed while it was being pushed/)
      expect(await s.keys()).to.deep.equal([])
    })

    it('leftovers of an interrupted push: same content is adopted, different content is a conflict, rm cleans them', async () => {
      await s.store.push(await pushRequest(fixture('iris_svc.onnx'), {version: '1'}))
      await s.store.push(await pushRequest(fixture('iris_svc.onnx'), {version: '2'}))
      // Simulate a push of version 3 that died after the model object and before the manifest.
      await s.corrupt('iris/3/model.onnx', readFileSync(fixture('iris_rf.onnx')))
      const conflict = await rejection(s.store.push(await pushRequest(fixture('iris_svc.onnx'), {version: '3'})))
      expect(conflict.exitCode).to.equal(ExitCode.CONFLICT)
      expect(conflict.suggestion).to.match(/mlops model rm iris@3 --yes/)
      const adopted = await s.store.push(await pushRequest(fixture('iris_rf.onnx'), {version: '3'}))
      expect(adopted.version).to.equal('3')

      await s.corrupt('iris/4/model.onnx', readFileSync(fixture('iris_rf.onnx')))
      const cleaned = await s.store.remove('iris', '4', async () => true)
      expect(cleaned?.committed).to.equal(false)
      expect((await s.keys()).filter(k => k.startsWith('iris/4/'))).to.deep.equal([])
    })

    describe('hostile store content: every name read back is checked like a typed one', () => {
      /** Pushes iris@1 with labels, then rewrites its manifest.json with `change` applied (size and sha256 left matching). */
      async function tamper(change: (manifest: Record<string, any>) => void): Promise<void> {
        await s.store.push(await pushRequest(fixture('iris_svc.onnx'), {}, fixture('iris_labels.json')))
        const manifest = JSON.parse((await s.read('iris/1/manifest.json'))!.toString('utf8'))
        change(manifest)
        await s.corrupt('iris/1/manifest.json', Buffer.from(JSON.stringify(manifest)))
      }

      /** The folder a pull writes into, inside a parent that must stay as it was. */
      function pullTarget(): {parent: string; dir: string} {
        const parent = tempDir()
        const dir = join(parent, 'workdir')
        writeFileSync(join(parent, 'payload.txt'), 'untouched')
        return {parent, dir: `${dir}/`}
      }

      for (const [what, change, message] of [
        [
          'a model file name that climbs out of the destination (../payload.txt)',
          (m: Record<string, any>) => {
            m.file = '../payload.txt'
          },
          /field "file" is not a plain file name: "..\/payload.txt"/,
        ],
        [
          'an absolute model file name (/etc/hostname)',
          (m: Record<string, any>) => {
            m.file = '/etc/hostname'
          },
          /field "file" is not a plain file name/,
        ],
        [
          'a labels file name that climbs out (../../../../etc/hostname)',
          (m: Record<string, any>) => {
            m.labels.file = '../../../../etc/hostname'
          },
          /field "labels.file" is not a plain file name/,
        ],
        [
          'a manifest copied from another version',
          (m: Record<string, any>) => {
            m.version = '7'
          },
          /it describes "iris@7", not iris@1/,
        ],
        [
          'a size that is not a byte count',
          (m: Record<string, any>) => {
            m.size = -1
          },
          /field "size" is not a byte count/,
        ],
        [
          'labels named like the model file',
          (m: Record<string, any>) => {
            m.labels.file = m.file
          },
          /field "labels.file" names another file of the version/,
        ],
      ] as const) {
        it(`bad input from the store: ${what} → exit 5, nothing written anywhere`, async () => {
          await tamper(change)
          const {parent, dir} = pullTarget()
          const error = await rejection(s.store.pull({ref: {name: 'iris', ref: '1'}, destination: dir, labelsDestination: dir}))
          expect(error.exitCode, error.message).to.equal(ExitCode.INTEGRITY)
          expect(error.message).to.match(/^iris@1: the manifest in .* is corrupt: /)
          expect(error.message).to.match(message)
          expect(listFiles(parent)).to.deep.equal(['payload.txt'])
          expect(readFileSync(join(parent, 'payload.txt'), 'utf8')).to.equal('untouched')
        })
      }

      for (const target of ['../../elsewhere', '..', 'latest/../1']) {
        it(`bad input from the store: an alias naming "${target}" → exit 5 naming the alias; it can be set again`, async () => {
          await s.store.push(await pushRequest(fixture('iris_svc.onnx')))
          await s.corrupt('iris/aliases/prod', Buffer.from(JSON.stringify({version: target})))
          const error = await rejection(s.store.resolve({name: 'iris', ref: 'prod'}))
          expect(error.exitCode).to.equal(ExitCode.INTEGRITY)
          expect(error.message).to.match(/^iris alias prod in .* is corrupt: it names no valid version/)
          expect(error.suggestion).to.equal('point it again: mlops model alias set iris@VERSION prod')
          await s.store.setAlias({name: 'iris', ref: '1'}, 'prod')
          expect((await s.store.resolve({name: 'iris', ref: 'prod'})).version).to.equal('1')
        })
      }
    })
  })
}

async function gcsCrc32c(s: StoreFixture, key: string): Promise<string | undefined> {
  const stat = await s.store.backend.stat(key)
  return stat?.crc32c
}
