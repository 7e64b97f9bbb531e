import {expect} from 'chai'
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {inspectModelFile} from '../../src/store/model-file.js'
import {runCli} from '../helpers/cli.js'
import {freePort} from '../env/ports.js'
import {fixture, listFiles, makeStore, tempDir} from '../helpers/stores.js'

/** The loader contract: what an initContainer running `mlops model pull` leaves for Kubernetes and for deploy. */
describe('loader contract (mlops model pull as an initContainer)', () => {
  it('success: one-line JSON termination summary and structured log lines on stderr', async () => {
    const s = await makeStore('gcs')
    await s.store.push({model: await inspectModelFile(fixture('iris_svc.onnx')), name: 'iris', metadata: {}, workDir: tempDir()})
    const dir = tempDir()
    const summaryPath = join(dir, 'termination-log')
    const run = await runCli(['model', 'pull', 'iris@1', '--to', join(dir, 'workdir', 'model.onnx'), '--termination-log', summaryPath, '--log-format', 'json'], s.env)
    expect(run.code).to.equal(0)
    const text = readFileSync(summaryPath, 'utf8')
    expect(text.trim().split('\n')).to.have.length(1)
    const summary = JSON.parse(text)
    expect(summary).to.include({ok: true, ref: 'iris@1', version: '1', bytes: 2486, skipped: false, sha256: 'd1f497a1f053d7cc43830cc84d0ecdc65e2dd370a4d3dedd4a49b13523e3a067'})
    expect(summary.seconds).to.be.a('number')
    const lines = run.stderr.trim().split('\n').map(line => JSON.parse(line))
    expect(lines.map(line => line.msg)).to.deep.equal(['resolving', 'resolved', 'verified'])
    expect(lines.every(line => line.component === 'loader' && line.level === 'info' && typeof line.time === 'string')).to.equal(true)
  })

  for (const [what, exitCode] of [['missing version', ExitCode.NOT_FOUND], ['corrupted object', ExitCode.INTEGRITY], ['store unreachable', ExitCode.UNAVAILABLE]] as const) {
    it(`${what}: exit ${exitCode}, the summary names the error, no model file in the volume`, async () => {
      const s = await makeStore('local')
      await s.store.push({model: await inspectModelFile(fixture('iris_svc.onnx')), name: 'iris', metadata: {}, workDir: tempDir()})
      let env = s.env
      let ref = 'iris@1'
      if (what === 'missing version') ref = 'iris@9'
      if (what === 'corrupted object') await s.corrupt('iris/1/model.onnx', Buffer.alloc(2486, 1))
      if (what === 'store unreachable') env = {MLOPS_STORE: 'gs://models', MLOPS_GCS_ENDPOINT: `http://127.0.0.1:${await freePort()}`, MLOPS_STORE_TIMEOUT: '1'}
      const volume = tempDir()
      const summaryPath = join(tempDir(), 'termination-log')
      const run = await runCli(['model', 'pull', ref, '--to', join(volume, 'model.onnx'), '--log-format', 'json'], {...env, MLOPS_TERMINATION_LOG: summaryPath})
      expect(run.code).to.equal(exitCode)
      const summary = JSON.parse(readFileSync(summaryPath, 'utf8'))
      expect(summary).to.deep.include({ok: false, ref})
      expect(summary.error.exitCode).to.equal(exitCode)
      expect(summary.error.message).to.be.a('string').and.not.equal('')
      expect(listFiles(volume)).to.deep.equal([])
      expect(existsSync(join(volume, 'model.onnx'))).to.equal(false)
      const errorLine = run.stderr.split('\n').filter(line => line.startsWith('{')).map(line => JSON.parse(line)).find(line => line.level === 'error')
      expect(errorLine).to.include({msg: 'pull failed', exitCode})
    })
  }
})
