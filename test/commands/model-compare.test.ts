import {expect} from 'chai'
import type {ChildProcess} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {type Server, createServer} from 'node:http'
import type {AddressInfo} from 'node:net'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {type Run, runCli, startIrisServer} from '../helpers/cli.js'
import {STORE_KINDS, type StoreFixture, expected, fixture, makeStore, tempDir} from '../helpers/stores.js'

const REFERENCE = fixture('iris_reference.csv')

/**
 * What the fixtures' generator computed with onnxruntime in Python, apart from mlops: the label
 * each model gives each of the 1,000 rows, and so the rows (1-based) where the SVC and the random
 * forest disagree.
 */
const labels = expected.reference.expected_label_indices as Record<'iris_svc.onnx' | 'iris_rf.onnx', number[]>
const DISAGREEING = labels['iris_svc.onnx'].flatMap((label, i) => (label === labels['iris_rf.onnx'][i] ? [] : [i + 1]))
const AGREEMENT = (1000 - DISAGREEING.length) / 1000

/** The CLI as a user runs it (the bundle), against one store. */
function mlops(s: StoreFixture, args: string[], cwd = tempDir()): Promise<Run> {
  return runCli(args, s.env, cwd, {timeoutMs: 60_000})
}

async function pushIris(s: StoreFixture): Promise<void> {
  const push = (file: string, ...more: string[]) =>
    mlops(s, ['model', 'push', fixture(file), '--name', 'iris', '--labels', fixture('iris_labels.json'), ...more])
  // iris@1: the SVC with the 1,000 rows as its reference set; iris@2: the random forest, without one.
  expect((await push('iris_svc.onnx', '--reference', REFERENCE)).code).to.equal(0)
  expect((await push('iris_rf.onnx')).code).to.equal(0)
}

const json = (run: Run) => JSON.parse(run.stdout) as Record<string, any>

describe('mlops model compare', function () {
  this.timeout(120_000)

  for (const kind of STORE_KINDS) {
    describe(`two versions in-process (${kind} store)`, () => {
      let s: StoreFixture

      before(async () => {
        s = await makeStore(kind)
        await pushIris(s)
      })

      it("the SVC against the random forest on the SVC's 1,000 reference rows: their real agreement, computed apart", async () => {
        expect(DISAGREEING.length, 'the fixture has rows where the two disagree').to.be.within(10, 200)
        const run = await mlops(s, ['model', 'compare', 'iris@1', 'iris@2', '--json'])
        expect(run.code, run.stderr).to.equal(0)
        const result = json(run)
        expect(result).to.deep.include({rows: 1000, agreement: AGREEMENT, disagreeing: DISAGREEING, failures: []})
        expect(result.source).to.deep.equal({kind: 'reference', name: 'iris@1 reference set'})
        expect(result.a).to.include({ref: 'iris@1', runtime: 'onnxruntime-node 1.30.0'})
        expect(result.b).to.include({ref: 'iris@2'})
        expect(result.outputs.map((o: {output: string}) => o.output)).to.deep.equal([
          'probability(setosa)',
          'probability(versicolor)',
          'probability(virginica)',
        ])
        for (const output of result.outputs) expect(output.max).to.be.within(0.1, 1)
        // The worst rows: all disagreements (there are more than 5), both answers with them.
        expect(result.worst).to.have.length(5)
        for (const row of result.worst) {
          expect(DISAGREEING).to.include(row.row)
          expect(row.a.label).to.equal(expected.labels[labels['iris_svc.onnx'][row.row - 1]])
          expect(row.b.label).to.equal(expected.labels[labels['iris_rf.onnx'][row.row - 1]])
        }

        // A now against what was recorded with it, by the same runtime: the same answers.
        expect(result.recorded).to.deep.equal({runtime: 'onnxruntime-node 1.30.0', agreement: 1, maxDelta: 0})
      })

      it('--min-agreement 0.99 exits 12 (disagreement), naming the threshold, the agreement and the first rows', async () => {
        const run = await mlops(s, ['model', 'compare', 'iris@1', 'iris@2', '--min-agreement', '0.99'])
        expect(run.code).to.equal(ExitCode.DISAGREEMENT)
        const rows = DISAGREEING.slice(0, 5).join(', ')
        expect(run.stderr).to.equal(
          `Error: agreement ${AGREEMENT} is below --min-agreement 0.99: ${DISAGREEING.length} of 1000 rows disagree (rows ${rows}, ...)\n`,
        )
        // The comparison is shown before the failure.
        expect(run.stdout).to.match(new RegExp(`^iris@1 vs iris@2 on 1000 rows \\(iris@1 reference set\\)\n`))
        expect(run.stdout).to.include(`agreement  ${AGREEMENT} (${DISAGREEING.length} rows disagree)\n`)
        expect(run.stdout).to.match(/^OUTPUT\s+MAX \|Δ\|\s+MEAN \|Δ\|\s+AT ROW$/m)
        expect(run.stdout).to.match(/^probability\(virginica\)\s+0\.\d+\s+0\.\d+\s+\d+$/m)
        expect(run.stdout).to.match(/^ROW\s+INPUT\s+A\s+B\s+\|Δ\|$/m)

        const asJson = await mlops(s, ['model', 'compare', 'iris@1', 'iris@2', '--min-agreement', '0.99', '--json'])
        expect(asJson.code).to.equal(ExitCode.DISAGREEMENT)
        expect(json(asJson).error).to.include({code: 'DISAGREEMENT', exitCode: 12})
      })

      it('passes at a threshold below the agreement', async () => {
        const run = await mlops(s, ['model', 'compare', 'iris@1', 'iris@2', '--min-agreement', String(AGREEMENT - 0.01)])
        expect(run.code, run.stderr).to.equal(0)
      })
    })
  }

  describe('one store, the other cases (local store)', () => {
    let s: StoreFixture
    let dir: string

    before(async () => {
      s = await makeStore('local')
      dir = tempDir()
      await pushIris(s)
    })

    it('a version against itself: agreement 1, every |Δ| 0, no worst rows; --max-delta 0 and --min-agreement 1 pass', async () => {
      const run = await mlops(s, ['model', 'compare', 'iris@1', 'iris@1', '--max-delta', '0', '--min-agreement', '1', '--json'])
      expect(run.code, run.stderr).to.equal(0)
      const result = json(run)
      expect(result).to.deep.include({agreement: 1, maxDelta: 0, disagreeing: [], worst: [], failures: []})
      for (const output of result.outputs) expect(output).to.include({max: 0, mean: 0})
    })

    it('--max-delta below the largest difference exits 12, naming the figure and the rows over it', async () => {
      const run = await mlops(s, ['model', 'compare', 'iris@1', 'iris@2', '--max-delta', '0.5', '--json'])
      expect(run.code).to.equal(ExitCode.DISAGREEMENT)
      expect(json(run).error.message).to.match(
        /^max \|Δ\| 0\.\d{3} is above --max-delta 0\.5: \d+ of 1000 rows differ by more \(rows \d+, \d+, \d+, \d+, \d+, \.\.\.\)$/,
      )
      const measured = json(await mlops(s, ['model', 'compare', 'iris@1', 'iris@2', '--json']))
      expect(measured.maxDelta).to.be.above(0.5)
      expect((await mlops(s, ['model', 'compare', 'iris@1', 'iris@2', '--max-delta', String(measured.maxDelta)])).code).to.equal(0)
    })

    it('--reference FILE: rows from the file instead of a reference set (B first, which has none)', async () => {
      const file = join(dir, 'rows.jsonl')
      writeFileSync(file, '[5.1, 3.5, 1.4, 0.2]\n[6.2, 3.4, 5.4, 2.3]\n')
      const run = await mlops(s, ['model', 'compare', 'iris@2', 'iris@1', '--reference', file, '--json'])
      expect(run.code, run.stderr).to.equal(0)
      expect(json(run)).to.deep.include({rows: 2, agreement: 1, source: {kind: 'file', name: file}})
      expect(json(run)).to.not.have.property('recorded')
    })

    const bad: Array<{name: string; args: () => string[]; code: number; message: RegExp}> = [
      {
        name: 'an unknown version',
        args: () => ['iris@1', 'iris@9'],
        code: ExitCode.NOT_FOUND,
        message: /^Error: iris has no version or alias "9" in /,
      },
      ...['1.5', '-1', 'abc'].map(value => ({
        name: `--min-agreement ${value}`,
        args: () => ['iris@1', 'iris@2', `--min-agreement=${value}`],
        code: ExitCode.USAGE,
        message: new RegExp(`^Error: --min-agreement ${value} is not a number from 0 to 1\nHint: see --help\n$`),
      })),
      {
        name: '--max-delta -0.1',
        args: () => ['iris@1', 'iris@2', '--max-delta=-0.1'],
        code: ExitCode.USAGE,
        message: /^Error: --max-delta -0\.1 is not a number of at least 0\nHint: see --help\n$/,
      },
      {
        name: '--reference with a missing file',
        args: () => ['iris@1', 'iris@2', '--reference', join(dir, 'missing.csv')],
        code: ExitCode.USAGE,
        message: /^Error: cannot read the reference file \S+missing\.csv: ENOENT/,
      },
      {
        name: 'A without a reference set and no --reference',
        args: () => ['iris@2', 'iris@1'],
        code: ExitCode.USAGE,
        message:
          /^Error: iris@2 has no reference set: there are no rows to compare on\nHint: record one \(mlops model reference add iris@2 FILE\) or pass --reference FILE/,
      },
      {
        name: 'models with different input widths (iris 4, diabetes 10)',
        args: () => ['iris@1', 'diabetes@1'],
        code: ExitCode.USAGE,
        message: /^Error: iris@1 takes rows of 4 values and diabetes@1 rows of 10: they cannot be compared on the same rows/,
      },
      {
        name: 'B and --url both',
        args: () => ['iris@1', 'iris@2', '--url', 'http://127.0.0.1:9'],
        code: ExitCode.USAGE,
        message: /^Error: B and --url each name what A is compared with: pass one of them/,
      },
      {
        name: 'no B and nothing deployed on the local target',
        args: () => ['iris@1', '--target', 'local'],
        code: ExitCode.NOT_FOUND,
        message: /^Error: nothing is running on the local target/,
      },
    ]
    for (const c of bad) {
      it(`bad input: ${c.name} → exit ${c.code}, one line and no stack`, async () => {
        if (c.name.includes('diabetes')) await mlops(s, ['model', 'push', fixture('diabetes_linreg.onnx'), '--name', 'diabetes'])
        const run = await mlops(s, ['model', 'compare', ...c.args()], dir)
        expect(run.code, run.stderr).to.equal(c.code)
        expect(run.stderr).to.match(c.message)
        expect(run.stderr).to.not.match(/\n\s+at /)
      })
    }
  })

  describe('against a live server (--url): a real mlops serve, and servers that answer garbage', () => {
    let s: StoreFixture
    let serve: ChildProcess
    let url: string

    before(async () => {
      s = await makeStore('local')
      await pushIris(s)
      ;({server: serve, url} = await startIrisServer())
    })

    after(() => {
      serve.kill('SIGTERM')
    })

    it('the version the server serves (the SVC): agreement 1 and |Δ| 0 over the 1,000 rows', async () => {
      const run = await mlops(s, ['model', 'compare', 'iris@1', '--url', url, '--min-agreement', '1', '--max-delta', '0', '--json'])
      expect(run.code, run.stderr).to.equal(0)
      const result = json(run)
      expect(result).to.deep.include({rows: 1000, agreement: 1, maxDelta: 0, b: {url}})
      expect(result.outputs).to.have.length(3)
    })

    it('the random forest in-process against the served SVC: the same agreement as two versions; 0.99 fails with exit 12', async () => {
      const file = fixture('iris_reference.csv')
      const run = await mlops(s, ['model', 'compare', 'iris@2', '--url', url, '--reference', file, '--min-agreement', '0.99'])
      expect(run.code).to.equal(ExitCode.DISAGREEMENT)
      expect(run.stdout).to.match(new RegExp(`^iris@2 vs ${url} on 1000 rows`))
      expect(run.stderr).to.include(
        `Error: agreement ${AGREEMENT} is below --min-agreement 0.99: ${DISAGREEING.length} of 1000 rows disagree`,
      )
    })

    describe('a server that answers garbage → exit 2, naming the URL and what it answered', () => {
      let garbage: Server
      let base: string
      let answer: (rows: number[][], path: string) => {status: number; body: string}

      before(async () => {
        garbage = createServer((request, response) => {
          let body = ''
          request.on('data', chunk => {
            body += chunk
          })
          request.on('end', () => {
            const rows = (JSON.parse(body || '{"data": []}') as {data: number[][]}).data
            const {status, body: text} = answer(rows, request.url ?? '')
            response.writeHead(status, {'content-type': 'application/json'}).end(text)
          })
        })
        await new Promise<void>(resolve => {
          garbage.listen(0, '127.0.0.1', resolve)
        })
        base = `http://127.0.0.1:${(garbage.address() as AddressInfo).port}`
      })

      after(() => {
        garbage.close()
      })

      const cases: Array<{name: string; answer: typeof answer; code: number; message: RegExp}> = [
        {
          name: 'text that is not JSON',
          answer: () => ({status: 200, body: '<html>hello</html>'}),
          code: ExitCode.USAGE,
          message: /\/predict \(rows 1-256\) answered text "<html>hello<\/html>", not \{"prediction": \[\.\.\.\]\}/,
        },
        {
          name: 'one prediction fewer than the rows',
          answer: rows => ({status: 200, body: JSON.stringify({prediction: rows.slice(1).map(() => [1, 0, 0])})}),
          code: ExitCode.USAGE,
          message: /\/predict \(rows 1-256\) answered 255 predictions for 256 rows/,
        },
        {
          name: 'a probability that is a string',
          answer: rows => ({status: 200, body: JSON.stringify({prediction: rows.map(() => [1, '0', 0])})}),
          code: ExitCode.USAGE,
          message: /\/predict \(rows 1-256\) answered row 1 with JSON "\[1,\\"0\\",0\]", not numbers/,
        },
        {
          name: 'labels for the wrong number of rows',
          answer: (rows, path) => ({
            status: 200,
            body: JSON.stringify({prediction: path === '/predict' ? rows.map(() => [1, 0, 0]) : ['setosa']}),
          }),
          code: ExitCode.USAGE,
          message: /\/predict\/label \(rows 1-256\) answered 1 predictions for 256 rows/,
        },
        {
          name: 'HTTP 500',
          answer: () => ({status: 500, body: '{"error": "boom"}'}),
          code: ExitCode.UNAVAILABLE,
          message: /the server answered 500: boom/,
        },
      ]
      for (const c of cases) {
        it(`bad answer: ${c.name} → exit ${c.code}`, async () => {
          answer = c.answer
          const run = await mlops(s, ['model', 'compare', 'iris@1', '--url', base])
          expect(run.code, run.stderr).to.equal(c.code)
          expect(run.stderr).to.match(c.message)
          expect(run.stderr.split('\n').filter(Boolean).length, run.stderr).to.be.at.most(2)
        })
      }
    })
  })
})
