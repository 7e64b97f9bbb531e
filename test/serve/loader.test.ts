import {expect} from 'chai'
import {spawn} from 'node:child_process'
import {existsSync, readFileSync, readdirSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {inspectModelFile} from '../../src/store/model-file.js'
import {runCli} from '../helpers/cli.js'
import {freePort, waitFor} from '../env/ports.js'
import {writeSyntheticOnnx} from '../helpers/onnx-writer.js'
import {fixture, listFiles, makeStore, tempDir} from '../helpers/stores.js'

const bin = join(import.meta.dirname, '..', '..', 'bin', 'run.js')

/** The loader contract: what an initContainer running `mlops model pull` leaves for Kubernetes and for deploy. */
describe('loader contract (mlops model pull as an initContainer)', () => {
  it('success: one-line JSON termination summary and structured log lines on stderr', async () => {
    const s = await makeStore('gcs')
    await s.store.push({model: await inspectModelFile(fixture('iris_svc.onnx')), name: 'iris', metadata: {}, workDir: tempDir()})
    const dir = tempDir()
    const summaryPath = join(dir, 'termination-log')
    const run = await runCli(
      ['model', 'pull', 'iris@1', '--to', join(dir, 'workdir', 'model.onnx'), '--termination-log', summaryPath, '--log-format', 'json'],
      s.env,
    )
    expect(run.code).to.equal(0)
    const text = readFileSync(summaryPath, 'utf8')
    expect(text.trim().split('\n')).to.have.length(1)
    const summary = JSON.parse(text)
    expect(summary).to.include({
      ok: true,
      ref: 'iris@1',
      version: '1',
      bytes: 2486,
      skipped: false,
      sha256: 'd1f497a1f053d7cc43830cc84d0ecdc65e2dd370a4d3dedd4a49b13523e3a067',
    })
    expect(summary.seconds).to.be.a('number')
    const lines = run.stderr
      .trim()
      .split('\n')
      .map(line => JSON.parse(line))
    expect(lines.map(line => line.msg)).to.deep.equal(['resolving', 'resolved', 'verified'])
    expect(lines.every(line => line.component === 'loader' && line.level === 'info' && typeof line.time === 'string')).to.equal(true)
  })

  for (const [what, exitCode, message] of [
    ['missing version', ExitCode.NOT_FOUND, /^iris has no version or alias "9" in /],
    [
      'corrupted object',
      ExitCode.INTEGRITY,
      /^iris@1: downloaded content has sha256 [0-9a-f]{64}, the manifest says d1f497a1f053d7cc43830cc84d0ecdc65e2dd370a4d3dedd4a49b13523e3a067; the stored object is corrupt$/,
    ],
    ['store unreachable', ExitCode.UNAVAILABLE, /ECONNREFUSED.*gave up after \d+ attempts/],
  ] as const) {
    it(`${what}: exit ${exitCode}, the summary names the error, no model file in the volume`, async () => {
      const s = await makeStore('local')
      await s.store.push({model: await inspectModelFile(fixture('iris_svc.onnx')), name: 'iris', metadata: {}, workDir: tempDir()})
      let env = s.env
      let ref = 'iris@1'
      if (what === 'missing version') ref = 'iris@9'
      if (what === 'corrupted object') await s.corrupt('iris/1/model.onnx', Buffer.alloc(2486, 1))
      if (what === 'store unreachable')
        env = {MLOPS_STORE: 'gs://models', MLOPS_GCS_ENDPOINT: `http://127.0.0.1:${await freePort()}`, MLOPS_STORE_TIMEOUT: '1'}
      const volume = tempDir()
      const summaryPath = join(tempDir(), 'termination-log')
      const run = await runCli(['model', 'pull', ref, '--to', join(volume, 'model.onnx'), '--log-format', 'json'], {
        ...env,
        MLOPS_TERMINATION_LOG: summaryPath,
      })
      expect(run.code).to.equal(exitCode)
      const summary = JSON.parse(readFileSync(summaryPath, 'utf8'))
      expect(summary).to.deep.include({ok: false, ref})
      expect(summary.error.exitCode).to.equal(exitCode)
      expect(summary.error.message).to.match(message)
      expect(listFiles(volume)).to.deep.equal([])
      expect(existsSync(join(volume, 'model.onnx'))).to.equal(false)
      const errorLine = run.stderr
        .split('\n')
        .filter(line => line.startsWith('{'))
        .map(line => JSON.parse(line))
        .find(line => line.level === 'error')
      expect(errorLine).to.include({msg: 'pull failed', exitCode})
    })
  }

  describe('the termination summary says the failure the command reports and exits with', () => {
    let store: Awaited<ReturnType<typeof makeStore>>
    before(async () => {
      store = await makeStore('local')
      await store.store.push({model: await inspectModelFile(fixture('iris_svc.onnx')), name: 'iris', metadata: {}, workDir: tempDir()})
    })

    // Each failure under --json (the error object on stdout) and as in a pod (MLOPS_LOG_FORMAT=json: the error log line).
    for (const [what, ref, extra, env, exitCode] of [
      ['a bad ref', 'iris@no such version', [], {}, ExitCode.USAGE],
      ['an unknown flag (the flags never parse)', 'iris@1', ['--no-such-flag'], {}, ExitCode.USAGE],
      ['a bad MLOPS_LOG_FORMAT (blamed on the variable)', 'iris@1', [], {MLOPS_LOG_FORMAT: 'xml'}, ExitCode.USAGE],
      ['a version not in the store', 'iris@9', [], {}, ExitCode.NOT_FOUND],
      [
        'an unreachable store',
        'iris@1',
        [],
        {MLOPS_STORE: 'gs://models', MLOPS_GCS_ENDPOINT: 'http://127.0.0.1:9', MLOPS_STORE_TIMEOUT: '1'},
        ExitCode.UNAVAILABLE,
      ],
    ] as const) {
      for (const reported of ['--json', 'MLOPS_LOG_FORMAT=json'] as const) {
        if (reported === 'MLOPS_LOG_FORMAT=json' && 'MLOPS_LOG_FORMAT' in env) continue
        it(`${what}, reported by ${reported}: the summary's code, exit code and message are the reported ones; the process exits ${exitCode}`, async () => {
          const summaryPath = join(tempDir(), 'termination-log')
          const run = await runCli(
            ['model', 'pull', ref, '--to', join(tempDir(), 'model.onnx'), ...extra, ...(reported === '--json' ? ['--json'] : [])],
            {
              ...store.env,
              MLOPS_TERMINATION_LOG: summaryPath,
              ...(reported === '--json' ? {} : {MLOPS_LOG_FORMAT: 'json'}),
              ...env,
            },
          )
          const summary = JSON.parse(readFileSync(summaryPath, 'utf8'))
          const error =
            reported === '--json'
              ? JSON.parse(run.stdout).error
              : run.stderr
                  .split('\n')
                  .filter(line => line.startsWith('{'))
                  .map(line => JSON.parse(line))
                  .find(line => line.level === 'error')
          expect(run.code, run.stderr).to.equal(exitCode)
          expect(summary.error.exitCode).to.equal(run.code)
          expect(summary.error).to.deep.equal({code: error.code, exitCode: error.exitCode, message: error.message})
        })
      }
    }
  })

  it("with --log-format json nothing but JSON reaches stdout or stderr (a container's log stays parseable)", async () => {
    const s = await makeStore('local')
    await s.store.push({
      model: await inspectModelFile(fixture('iris_svc.onnx'), fixture('iris_labels.json')),
      name: 'iris',
      metadata: {},
      workDir: tempDir(),
    })
    const dir = tempDir()
    const run = await runCli(
      ['model', 'pull', 'iris@1', '--to', join(dir, 'model.onnx'), '--labels-to', join(dir, 'labels.json'), '--log-format', 'json'],
      s.env,
    )
    expect(run.code, run.stderr).to.equal(0)
    expect(run.stdout).to.equal('')
    for (const line of run.stderr.trim().split('\n')) expect(() => JSON.parse(line), line).to.not.throw()
  })

  describe('a pull killed mid-download', function () {
    this.timeout(120_000)
    let store: Awaited<ReturnType<typeof makeStore>>
    before(async () => {
      store = await makeStore('gcs')
      const dir = tempDir()
      writeSyntheticOnnx(join(dir, 'big.onnx'), 512 << 20)
      await store.store.push({model: await inspectModelFile(join(dir, 'big.onnx')), name: 'big', metadata: {}, workDir: dir})
    })

    /** Starts a pull into a fresh folder and sends `signal` as soon as its temp file exists. */
    async function interruptedPull(
      signal: NodeJS.Signals,
    ): Promise<{volume: string; exit: {code: number | null; signal: NodeJS.Signals | null}}> {
      const volume = tempDir()
      const child = spawn(process.execPath, [bin, 'model', 'pull', 'big@1', '--to', join(volume, 'model.onnx')], {
        env: {...process.env, ...store.env},
        stdio: 'ignore',
      })
      const exit = new Promise<{code: number | null; signal: NodeJS.Signals | null}>(resolve => {
        child.once('exit', (code, sig) => resolve({code, signal: sig}))
      })
      await waitFor(async () => readdirSync(volume).some(name => name.endsWith('.tmp')), "the pull's temp file", 60_000)
      child.kill(signal)
      return {volume, exit: await exit}
    }

    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      it(`${signal} (a pod stopped, Ctrl-C): the pull removes its temp file and ends by the signal; no model.onnx`, async () => {
        const {volume, exit} = await interruptedPull(signal)
        expect(exit.signal).to.equal(signal)
        expect(listFiles(volume)).to.deep.equal([])
      })
    }

    it('SIGKILL (OOM, kill -9) leaves the temp file, never model.onnx; the next pull removes it and leaves only the verified model', async () => {
      const {volume, exit} = await interruptedPull('SIGKILL')
      expect(exit.signal).to.equal('SIGKILL')
      const left = listFiles(volume)
      expect(left).to.have.length(1)
      expect(left[0]).to.match(/^\.model\.onnx\.\d+\.[0-9a-f]{8}\.tmp$/)
      const again = await runCli(['model', 'pull', 'big@1', '--to', join(volume, 'model.onnx')], store.env)
      expect(again.code, again.stderr).to.equal(0)
      expect(listFiles(volume)).to.deep.equal(['model.onnx'])
    })
  })
})

describe('a push to a folder store killed mid-write (kill -9)', function () {
  this.timeout(120_000)

  it('leaves nothing anyone can pull; model rm removes its temp files; a new push of the version removes them too', async () => {
    const dir = tempDir()
    const model = join(dir, 'big.onnx')
    writeSyntheticOnnx(model, 512 << 20)
    const store = join(dir, 'store')
    const push = () =>
      spawn(process.execPath, [bin, 'model', 'push', model, '--name', 'big', '--version', '1', '--store', store], {stdio: 'ignore'})
    const killMidWrite = async () => {
      const child = push()
      const exit = new Promise(resolve => {
        child.once('exit', (_code, signal) => resolve(signal))
      })
      await waitFor(async () => listFiles(store).some(name => name.endsWith('.tmp')), "the push's temp file", 60_000)
      child.kill('SIGKILL')
      expect(await exit).to.equal('SIGKILL')
      expect(listFiles(store).filter(name => name.endsWith('.tmp'))).to.have.length.greaterThan(0)
    }

    await killMidWrite()
    const pull = await runCli(['model', 'pull', 'big@1', '--to', join(dir, 'out.onnx'), '--store', store])
    expect(pull.code).to.equal(ExitCode.NOT_FOUND)
    const rm = await runCli(['model', 'rm', 'big@1', '--yes', '--store', store])
    expect(rm.code, rm.stderr).to.equal(0)
    expect(listFiles(store)).to.deep.equal([])

    await killMidWrite()
    const again = await runCli(['model', 'push', model, '--name', 'big', '--version', '1', '--store', store])
    expect(again.code, again.stderr).to.equal(0)
    expect(listFiles(store).filter(name => name.endsWith('.tmp'))).to.deep.equal([])
  })
})
