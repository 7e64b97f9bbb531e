import {expect} from 'chai'
import {type ChildProcess, spawn} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {runCli, startCli, startIrisServer} from '../helpers/cli.js'
import {freePort, waitFor} from '../env/ports.js'
import {metric} from '../helpers/metrics.js'
import {fixture, tempDir} from '../helpers/stores.js'

const bin = join(import.meta.dirname, '..', '..', 'bin', 'run.js')

describe('mlops predict against a real mlops serve', function () {
  this.timeout(120_000)
  let server: ChildProcess
  let url: string
  let dir: string

  before(async () => {
    const started = await startIrisServer()
    url = started.url
    server = started.server
    dir = tempDir()
  })

  after(() => {
    server.kill('SIGTERM')
  })

  it('--data with one row prints the label; --endpoint /predict the probabilities', async () => {
    const label = await runCli(['predict', '--url', url, '--data', '[[6.3, 3.3, 6.0, 2.5]]'])
    expect(label.code, label.stderr).to.equal(0)
    expect(label.stdout.trim()).to.equal('{"prediction":"virginica"}')
    const probabilities = await runCli([
      'predict',
      '--url',
      url,
      '--data',
      '{"data": [[5.1, 3.5, 1.4, 0.2]]}',
      '--endpoint',
      '/predict',
      '--json',
    ])
    expect(JSON.parse(probabilities.stdout).response.prediction[0]).to.have.length(3)
  })

  it('--file accepts CSV (header skipped) and JSON', async () => {
    writeFileSync(join(dir, 'rows.csv'), 'sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n')
    expect((await runCli(['predict', '--url', url, '--file', join(dir, 'rows.csv')])).stdout.trim()).to.equal(
      '{"prediction":["setosa","virginica"]}',
    )
    writeFileSync(join(dir, 'rows.json'), '[[5.1, 3.5, 1.4, 0.2]]')
    expect((await runCli(['predict', '--url', url, '--file', join(dir, 'rows.json')])).stdout.trim()).to.equal('{"prediction":"setosa"}')
  })

  it('rows piped on stdin (JSON, or CSV with a header) give the same prediction as --data', async () => {
    const rows = '[[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]'
    const viaData = await runCli(['predict', '--url', url, '--data', rows])
    expect(viaData.code, viaData.stderr).to.equal(0)
    expect(viaData.stdout.trim()).to.equal('{"prediction":["setosa","virginica"]}')
    const json = await runCli(['predict', '--url', url], {}, dir, {input: `{"data": ${rows}}\n`})
    expect(json.code, json.stderr).to.equal(0)
    expect(json.stdout).to.equal(viaData.stdout)
    const csv = await runCli(['predict', '--url', url], {}, dir, {
      input: 'sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n',
    })
    expect(csv.code, csv.stderr).to.equal(0)
    expect(csv.stdout).to.equal(viaData.stdout)
  })

  it('bad input: empty stdin (no --data, no --file) → exit 2 with one Error: line', async () => {
    const run = await runCli(['predict', '--url', url], {}, dir, {input: ''})
    expect(run.code).to.equal(ExitCode.USAGE)
    expect(run.stderr).to.equal('Error: stdin is empty: give rows as JSON ({"data": [[...]]}) or CSV\n')
    expect(run.stdout).to.equal('')
  })

  it('--protocol v2 finds the input name from the server and returns the outputs', async () => {
    const run = await runCli([
      'predict',
      '--url',
      url,
      '--protocol',
      'v2',
      '--model-name',
      'iris',
      '--data',
      '[6.3, 3.3, 6.0, 2.5]',
      '--json',
    ])
    expect(run.code, run.stderr).to.equal(0)
    const outputs = JSON.parse(run.stdout).response.outputs
    expect(outputs.map((o: {name: string}) => o.name)).to.deep.equal(['output_label', 'probabilities'])
    expect(outputs[0].data).to.deep.equal([2])
  })

  it('-n and --concurrency report requests/s and p50/p95/p99 (a table, or --json)', async () => {
    const run = await runCli(['predict', '--url', url, '--data', '[6.3, 3.3, 6.0, 2.5]', '-n', '300', '--concurrency', '8', '--json'])
    expect(run.code, run.stderr).to.equal(0)
    const {load} = JSON.parse(run.stdout)
    expect(load).to.include({requests: 300, errors: 0})
    expect(load.p50).to.be.a('number').and.at.most(load.p99)
    const table = await runCli(['predict', '--url', url, '--data', '[6.3, 3.3, 6.0, 2.5]', '-n', '50', '-c', '4'])
    expect(table.stdout).to.match(/REQUESTS\s+ERRORS\s+REQ\/S\s+P50\s+P95\s+P99\s+MAX\n50\s+0\s+\d+/)
  })

  it('MLOPS_TARGET in the environment does not conflict with --url; --target beats MLOPS_PREDICT_URL', async () => {
    const viaUrl = await runCli(['predict', '--url', url, '--data', '[[6.3,3.3,6.0,2.5]]'], {MLOPS_TARGET: 'docker'})
    expect(viaUrl.code, viaUrl.stderr).to.equal(0)
    const viaTarget = await runCli(['predict', '--target', 'local', '--data', '[[6.3,3.3,6.0,2.5]]'], {MLOPS_PREDICT_URL: url})
    expect(viaTarget.code).to.equal(ExitCode.NOT_FOUND)
    expect(viaTarget.stderr).to.match(/^Error: nothing is running on the local target/)
  })

  it('--expect: a match exits 0, a mismatch exits 11', async () => {
    expect((await runCli(['predict', '--url', url, '--data', '[6.3, 3.3, 6.0, 2.5]', '--expect', 'virginica'])).code).to.equal(0)
    const mismatch = await runCli(['predict', '--url', url, '--data', '[6.3, 3.3, 6.0, 2.5]', '--expect', 'setosa'])
    expect(mismatch.code).to.equal(ExitCode.EXPECTATION_FAILED)
    expect(mismatch.stderr).to.equal('Error: prediction "virginica" does not match --expect setosa\n')
  })

  for (const [what, args, code, message] of [
    ['invalid JSON', ['--data', '[[6.3, 3.3'], ExitCode.USAGE, /--data is not valid JSON/],
    ['CSV with the wrong column count', ['--file', 'bad.csv'], ExitCode.USAGE, /row 2 has 3 values, row 1 has 4/],
    [
      'a row the model refuses (3 values for 4)',
      ['--data', '[[6.3, 3.3, 6.0]]'],
      ExitCode.USAGE,
      /the server refused the request \(400\): row 0 has 3 values, the model expects 4/,
    ],
    [
      'an unreachable URL',
      ['--url', 'http://127.0.0.1:9', '--data', '[[1,2,3,4]]'],
      ExitCode.UNAVAILABLE,
      /cannot reach http:\/\/127\.0\.0\.1:9/,
    ],
    [
      'a URL that is not http(s)',
      ['--url', 'ftp://127.0.0.1:9', '--data', '[[1,2,3,4]]'],
      ExitCode.USAGE,
      /^Error: invalid --url ftp:\/\/127\.0\.0\.1:9: only http:\/\/ and https:\/\/ are served\nHint: use http:\/\/HOST:PORT/,
    ],
    [
      '-n 10 against an unreachable URL',
      ['--url', 'http://127.0.0.1:9', '--data', '[[1,2,3,4]]', '-n', '10'],
      ExitCode.UNAVAILABLE,
      /cannot reach http:\/\/127\.0\.0\.1:9/,
    ],
    [
      '--namespace with --url (a cluster flag)',
      ['--namespace', 'iris', '--data', '[[1,2,3,4]]'],
      ExitCode.USAGE,
      /--namespace applies to --target k8s, not --url/,
    ],
    [
      '--context with --target local',
      ['--target', 'local', '--context', 'prod', '--data', '[[1,2,3,4]]'],
      ExitCode.USAGE,
      /--context applies to --target k8s, not local/,
    ],
    [
      '--url and --target together',
      ['--url', 'http://127.0.0.1:9', '--target', 'local', '--data', '[[1,2,3,4]]'],
      ExitCode.USAGE,
      /--url and --target each name a server: pass one of them/,
    ],
    [
      'an unknown v2 model',
      ['--protocol', 'v2', '--model-name', 'nope', '--data', '[[1,2,3,4]]'],
      ExitCode.NOT_FOUND,
      /does not serve a model named nope/,
    ],
  ] as const) {
    it(`bad input: ${what} → exit ${code}`, async () => {
      writeFileSync(join(dir, 'bad.csv'), '1,2,3,4\n1,2,3\n')
      const full: string[] =
        (args as readonly string[]).includes('--url') || (args as readonly string[]).includes('--target')
          ? [...args]
          : ['--url', url, ...args]
      const run = await runCli(['predict', ...full.map(a => (a === 'bad.csv' ? join(dir, 'bad.csv') : a))])
      expect(run.code).to.equal(code)
      expect(run.stderr).to.match(message)
      expect(run.stderr.split('\n')[0]).to.match(/^Error: /)
    })
  }
})

describe('predict -n with a huge count', function () {
  this.timeout(60_000)

  it('Ctrl-C (SIGINT) stops sending, prints the figures so far and exits 130', async () => {
    const port = await freePort()
    const server = spawn(
      process.execPath,
      [bin, 'serve', '--model', fixture('iris_svc.onnx'), '--port', String(port), '--host', '127.0.0.1', '--log-format', 'json'],
      {stdio: 'ignore'},
    )
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/ready`)).ok, 'serve ready')
      const predict = startCli([
        'predict',
        '--url',
        `http://127.0.0.1:${port}`,
        '--data',
        '[[6.3, 3.3, 6, 2.5]]',
        '-n',
        '1000000000000',
        '-c',
        '2',
      ])
      // Ctrl-C once the server reports answers to this run: not after a guessed time.
      const url = `http://127.0.0.1:${port}`
      await waitFor(async () => (await metric(url, 'mlops_http_requests_total', 'method="POST",status="200"')) >= 10, 'answers')
      predict.child.kill('SIGINT')
      const {code, stdout, stderr} = await predict.done
      expect(code).to.equal(130)
      expect(stdout).to.match(/^\{"prediction":2\}$/m)
      const figures = /^(\d+) +0 +\d+ +[\d.]+ ms/m.exec(stdout)
      expect(figures, stdout).to.not.equal(null)
      expect(Number(figures![1])).to.be.greaterThan(0).and.lessThan(1_000_000_000_000)
      expect(stderr).to.match(new RegExp(`^interrupted after ${figures![1]} of 1000000000000 requests$`, 'm'))
    } finally {
      server.kill('SIGTERM')
    }
  })

  it('an unreachable --url: gives up after a few failed attempts with exit 7, not after -n of them', async () => {
    const port = await freePort()
    const run = await runCli(['predict', '--url', `http://127.0.0.1:${port}`, '--data', '[[1, 2, 3, 4]]', '-n', '1000000000000'])
    expect(run.code).to.equal(ExitCode.UNAVAILABLE)
    expect(run.stderr).to.match(new RegExp(`^Error: cannot reach http://127\\.0\\.0\\.1:${port}: `, 'm'))
  })
})
