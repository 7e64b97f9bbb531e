import {runCommand} from '@oclif/test'
import {expect} from 'chai'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {REFERENCE_MAX_BYTES, REFERENCE_MAX_ROWS} from '../../src/store/references.js'
import {STORE_KINDS, type StoreFixture, fixture, makeStore, tempDir} from '../helpers/stores.js'

const root = join(import.meta.dirname, '..', '..')
const SVC_SHA256 = 'd1f497a1f053d7cc43830cc84d0ecdc65e2dd370a4d3dedd4a49b13523e3a067'
const ROWS = [
  [5.1, 3.5, 1.4, 0.2],
  [6.2, 3.4, 5.4, 2.3],
  [5.9, 3.0, 4.2, 1.5],
]

/** Runs `mlops ARGS` in-process against a store; returns exit code, parsed JSON and output. */
async function mlops(s: StoreFixture, args: string[]) {
  const storeArgs = ['--store', s.uri, ...(s.env.MLOPS_GCS_ENDPOINT ? ['--gcs-endpoint', s.env.MLOPS_GCS_ENDPOINT] : [])]
  const {error, stdout, stderr} = await runCommand([...args, ...storeArgs], {root})
  const exitCode = error ? ((error as {oclif?: {exit?: number}}).oclif?.exit ?? 1) : 0
  const json = args.includes('--json') && exitCode === 0 ? JSON.parse(stdout) : undefined
  return {exitCode, json, stdout, stderr: `${stderr}${error?.message ?? ''}`}
}

const push = (s: StoreFixture, ...more: string[]) =>
  mlops(s, ['model', 'push', fixture('iris_svc.onnx'), '--name', 'iris', '--labels', fixture('iris_labels.json'), ...more])

for (const kind of STORE_KINDS) {
  describe(`mlops model push --reference and model reference add (${kind})`, () => {
    let s: StoreFixture
    let dir: string
    let csv: string

    beforeEach(async () => {
      s = await makeStore(kind)
      dir = tempDir()
      csv = join(dir, 'reference.csv')
      writeFileSync(csv, ['sepal_length,sepal_width,petal_length,petal_width', ...ROWS.map(r => r.join(','))].join('\n'))
    })

    it('push --reference records the rows and outputs beside the version; show lists them in text and --json', async () => {
      const pushed = await push(s, '--reference', csv, '--json')
      expect(pushed.exitCode).to.equal(0)
      expect(pushed.json.reference).to.include({file: 'reference.json', rows: 3, runtime: 'onnxruntime-node 1.30.0'})
      expect(await s.keys()).to.include.members(['iris/1/reference.json', 'iris/1/manifest.json'])

      const record = JSON.parse((await s.read('iris/1/reference.json'))!.toString())
      expect(record).to.include({name: 'iris', version: '1', modelSha256: SVC_SHA256, rows: 3, sha256: pushed.json.reference.sha256})
      expect(record.inputs).to.deep.equal(ROWS)
      expect(record.outputs.map((o: {label: string}) => o.label)).to.deep.equal(['setosa', 'virginica', 'versicolor'])
      expect(record.outputs[0].prediction).to.have.length(3)
      // The manifest stays what a push without a reference writes.
      expect(JSON.parse((await s.read('iris/1/manifest.json'))!.toString())).to.not.have.property('reference')

      const shown = await mlops(s, ['model', 'show', 'iris@1', '--json'])
      expect(shown.json.reference).to.deep.equal(pushed.json.reference)
      const text = await mlops(s, ['model', 'show', 'iris@1'])
      expect(text.stdout).to.include(`  reference  3 rows by onnxruntime-node 1.30.0, sha256 ${pushed.json.reference.sha256}\n`)
    })

    it('reference add attaches to an existing version; the same again is unchanged; a different one is a conflict (4) until --replace', async () => {
      expect((await push(s, '--alias', 'prod')).exitCode).to.equal(0)
      expect((await mlops(s, ['model', 'show', 'iris@1', '--json'])).json).to.not.have.property('reference')

      const added = await mlops(s, ['model', 'reference', 'add', 'iris@prod', csv, '--json'])
      expect(added.exitCode).to.equal(0)
      expect(added.json).to.include({ref: 'iris@1', unchanged: false})
      expect(added.json.reference).to.include({rows: 3})
      const again = await mlops(s, ['model', 'reference', 'add', 'iris@1', csv])
      expect(again.stdout).to.equal(`iris@1 reference unchanged: 3 rows, onnxruntime-node 1.30.0, sha256:${added.json.reference.sha256}\n`)

      const jsonl = join(dir, 'other.jsonl')
      writeFileSync(jsonl, `${JSON.stringify(ROWS[2])}\n${JSON.stringify(ROWS[0])}\n`)
      const refused = await mlops(s, ['model', 'reference', 'add', 'iris@1', jsonl])
      expect(refused.exitCode).to.equal(ExitCode.CONFLICT)
      expect(refused.stderr).to.match(/iris@1 has a different reference set \(3 rows, onnxruntime-node 1\.30\.0, sha256:\w{12}\)/)
      expect((await mlops(s, ['model', 'show', 'iris@1', '--json'])).json.reference.sha256).to.equal(added.json.reference.sha256)

      const replaced = await mlops(s, ['model', 'reference', 'add', 'iris@1', jsonl, '--replace', '--json'])
      expect(replaced.json).to.include({unchanged: false, replaced: added.json.reference.sha256})
      expect(replaced.json.reference).to.include({rows: 2})
      expect((await mlops(s, ['model', 'show', 'iris@1', '--json'])).json.reference.sha256).to.equal(replaced.json.reference.sha256)
    })

    it('bad record: a tampered reference.json (an input changed) → show and add fail as integrity (5), naming the object', async () => {
      await push(s, '--reference', csv)
      const record = JSON.parse((await s.read('iris/1/reference.json'))!.toString())
      record.inputs[0][0] = 7.7
      await s.corrupt('iris/1/reference.json', Buffer.from(JSON.stringify(record)))
      const shown = await mlops(s, ['model', 'show', 'iris@1'])
      expect(shown.exitCode).to.equal(ExitCode.INTEGRITY)
      expect(shown.stderr).to.match(/iris@1: the reference set \S+iris\/1\/reference\.json is corrupt: its rows have sha256/)
      expect((await mlops(s, ['model', 'reference', 'add', 'iris@1', csv])).exitCode).to.equal(ExitCode.INTEGRITY)
      expect((await mlops(s, ['model', 'reference', 'add', 'iris@1', csv, '--replace'])).exitCode).to.equal(0)
      expect((await mlops(s, ['model', 'show', 'iris@1'])).exitCode).to.equal(0)
    })

    it('bad record: a reference.json that is not JSON → show fails as integrity (5), naming the object', async () => {
      await push(s, '--reference', csv)
      await s.corrupt('iris/1/reference.json', Buffer.from('{"inputs": [[1'))
      const shown = await mlops(s, ['model', 'show', 'iris@1', '--json'])
      expect(shown.exitCode).to.equal(ExitCode.INTEGRITY)
      expect(shown.stderr).to.match(/reference\.json is corrupt: not JSON/)
    })
  })
}

describe('mlops model push --reference / model reference add: bad reference files (exit 2, nothing stored)', () => {
  let s: StoreFixture
  let dir: string

  beforeEach(async () => {
    s = await makeStore('local')
    dir = tempDir()
  })

  const cases: Array<{name: string; content: () => string | Buffer; message: RegExp}> = [
    {
      name: `more than ${REFERENCE_MAX_ROWS} rows`,
      content: () => Array.from({length: REFERENCE_MAX_ROWS + 1}, () => '1,2,3,4').join('\n'),
      message: /has 10001 rows; a reference set is at most 10000 rows/,
    },
    {
      name: 'more than 8 MiB',
      content: () => Buffer.alloc(REFERENCE_MAX_BYTES + 1, ' '),
      message: /is 8\.0 MiB; a reference set is at most 8\.0 MiB/,
    },
    {name: 'not JSON', content: () => '[[5.1, 3.5, 1.4', message: /is not valid JSON/},
    {name: 'a row of strings', content: () => '[[5.1, 3.5, 1.4, 0.2], ["a", "b", "c", "d"]]', message: /row 2 is not a list of numbers/},
    {name: 'an empty file', content: () => '', message: /is empty/},
    {
      name: 'a row the model refuses (3 values for 4 inputs)',
      content: () => '[[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, 1.4, 0.2], [1, 2, 3]]',
      message: /rows\.json: row 3 has 3 values, row 1 has 4/,
    },
    {
      name: 'rows the model refuses (3 values each)',
      content: () => '[[5.1, 3.5, 1.4], [6.2, 3.4, 5.4]]',
      message: /rows\.json: row 1 is refused by the model: has 3 values, the model expects 4/,
    },
  ]

  for (const c of cases) {
    it(`bad file: ${c.name} → exit 2 on push and on add, nothing stored`, async () => {
      const file = join(dir, 'rows.json')
      writeFileSync(file, c.content())
      const pushed = await push(s, '--reference', file)
      expect(pushed.exitCode).to.equal(ExitCode.USAGE)
      expect(pushed.stderr).to.match(c.message)
      expect(await s.keys()).to.deep.equal([])

      expect((await push(s)).exitCode).to.equal(0)
      const added = await mlops(s, ['model', 'reference', 'add', 'iris@1', file])
      expect(added.exitCode).to.equal(ExitCode.USAGE)
      expect(added.stderr).to.match(c.message)
      expect(await s.keys()).to.not.include('iris/1/reference.json')
    })
  }

  it('bad file: --reference with a model that is not ONNX → exit 2, nothing stored', async () => {
    const model = join(dir, 'model.bin')
    const rows = join(dir, 'rows.json')
    writeFileSync(model, 'weights')
    writeFileSync(rows, '[[1, 2]]')
    const pushed = await mlops(s, ['model', 'push', model, '--name', 'raw', '--reference', rows])
    expect(pushed.exitCode).to.equal(ExitCode.USAGE)
    expect(pushed.stderr).to.match(/--reference needs an ONNX model/)
    expect(await s.keys()).to.deep.equal([])
  })
})
