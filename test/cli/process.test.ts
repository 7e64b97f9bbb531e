import {expect} from 'chai'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {freePort} from '../env/ports.js'
import {runCli} from '../helpers/cli.js'
import {STORE_KINDS, fixture, makeStore, tempDir} from '../helpers/stores.js'

describe('mlops as a process', () => {
  it('--version prints name and version', async () => {
    const run = await runCli(['--version'])
    expect(run.code).to.equal(0)
    expect(run.stdout).to.match(/^mlops\/\d+\.\d+\.\d+ /)
  })

  it('invalid name with spaces → exit 2, one line, no stack trace', async () => {
    const run = await runCli(['model', 'push', fixture('iris_svc.onnx'), '--name', 'my model'], {MLOPS_STORE: join(tempDir(), 's')})
    expect(run.code).to.equal(ExitCode.USAGE)
    expect(run.stderr).to.equal(
      'Error: invalid model name "my model" (8 characters): use 1-64 characters from A-Z a-z 0-9 . _ -, not starting with "."\n',
    )
  })

  for (const [input, args, code] of [
    ['a model that does not exist', ['model', 'show', 'nope@1'], ExitCode.NOT_FOUND],
    ['an unknown flag (--bogus)', ['model', 'list', '--bogus'], ExitCode.USAGE],
    ['an unknown command (mlops modle list)', ['modle', 'list'], ExitCode.USAGE],
    ['a bad --set (a..b=1)', ['render', '--set', 'a..b=1'], ExitCode.USAGE],
  ] as const)
    it(`--json failure, bad input ${input}: the error object on stdout and the same Error:/Hint: lines on stderr`, async () => {
      const project = tempDir()
      const run = await runCli([...args, '--json'], {MLOPS_STORE: join(project, 's')}, project)
      expect(run.code, run.stderr).to.equal(code)
      const {error} = JSON.parse(run.stdout) as {error: {code: string; exitCode: number; message: string; suggestion?: string}}
      expect(error.exitCode).to.equal(code)
      expect(run.stderr).to.equal(`Error: ${error.message}\n${error.suggestion ? `Hint: ${error.suggestion}\n` : ''}`)
    })

  it('success without a TTY prints no spinner or progress on stderr', async () => {
    const run = await runCli(['model', 'push', fixture('iris_svc.onnx'), '--name', 'iris'], {MLOPS_STORE: join(tempDir(), 's')})
    expect(run.code).to.equal(0)
    expect(run.stderr).to.equal('')
    expect(run.stdout).to.match(/^iris@1 {2}2\.4 KiB {2}sha256:d1f497a1f053/)
  })

  it('storage server down → exit 7 after MLOPS_STORE_TIMEOUT seconds, no stack trace', async () => {
    const port = await freePort()
    const run = await runCli(['model', 'list'], {
      MLOPS_STORE: 'gs://models',
      MLOPS_GCS_ENDPOINT: `http://127.0.0.1:${port}`,
      MLOPS_STORE_TIMEOUT: '2',
    })
    expect(run.code).to.equal(ExitCode.UNAVAILABLE)
    // The timeout contract as the CLI reports it: several attempts, given up once the 2 s window closed.
    const gaveUp =
      /^Error: listing gs:\/\/models at http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED.*\(gave up after (\d+) attempts in \d+\.\ds\)\nHint: .*MLOPS_STORE_TIMEOUT/.exec(
        run.stderr,
      )
    expect(gaveUp, run.stderr).to.not.equal(null)
    expect(Number(gaveUp![1])).to.be.at.least(2)
    expect(run.stderr).to.not.match(/\n\s+at /)
  })

  for (const kind of STORE_KINDS) {
    it(`concurrent push of one version from two processes (${kind}): exactly one succeeds, the other exits 4`, async () => {
      const s = await makeStore(kind)
      const files = [fixture('iris_svc.onnx'), fixture('iris_rf.onnx')]
      const runs = await Promise.all(files.map(file => runCli(['model', 'push', file, '--name', 'iris', '--version', '1'], s.env)))
      expect(runs.map(r => r.code).sort()).to.deep.equal([0, ExitCode.CONFLICT])
      const loser = runs.find(r => r.code === ExitCode.CONFLICT)!
      expect(loser.stderr).to.match(/^Error: iris@1 (already exists|is being pushed by another process)/)
      const manifest = await s.store.resolve({name: 'iris', ref: '1'})
      const winner = runs.findIndex(r => r.code === 0)
      expect(runs[winner].stdout).to.contain(manifest.sha256)
      // Read back: the stored bytes are the winner's file, and neither process left anything else.
      expect((await s.read('iris/1/model.onnx'))!.equals(readFileSync(files[winner]))).to.equal(true)
      expect(await s.keys()).to.deep.equal(['iris/1/manifest.json', 'iris/1/model.onnx'])
    })
  }
})
