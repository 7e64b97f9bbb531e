import {expect} from 'chai'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {startProcess} from '../helpers/cli.js'
import {stillRunning} from '../helpers/processes.js'
import {fixture, tempDir} from '../helpers/stores.js'

const bin = join(import.meta.dirname, '..', '..', 'bin', 'run.js')

/**
 * The local target on a machine without /proc, as on macOS: each command runs in a mount
 * namespace of its own whose /proc is an empty tmpfs (unshare -m; the suite runs as root), and
 * the servers deploy starts live in that namespace too. Identifying, watching and stopping the
 * server must rest on asking it (GET /instance) and kill(pid, 0), never on /proc.
 */
describe('the local target with /proc hidden (as on macOS): deploy, status, predict, redeploy, delete', function () {
  this.timeout(180_000)
  let project: string
  const hidden = async (args: string[]) =>
    startProcess('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs none /proc && exec "$@"', 'sh', ...args], {}, project, {timeoutMs: 90_000})
      .done
  const mlops = async (...args: string[]) => hidden([process.execPath, bin, ...args])

  before(async () => {
    project = tempDir()
    writeFileSync(join(project, 'mlops.yaml'), 'name: iris\nmodel:\n  name: iris\n')
    for (const file of ['iris_svc.onnx', 'iris_logreg.onnx']) {
      const pushed = await mlops('model', 'push', fixture(file), '--labels', fixture('iris_labels.json'))
      expect(pushed.code, pushed.stderr).to.equal(0)
    }
  })

  after(async () => {
    await mlops('delete', '--target', 'local')
  })

  it('the namespace really hides /proc: it is empty there (and unshare works here)', async () => {
    const listed = await hidden(['ls', '-A', '/proc'])
    expect(listed, listed.stderr).to.deep.include({code: 0, stdout: ''})
  })

  it('the whole flow: deploy, status, predict, a redeploy that retires the first server, delete that stops the second', async () => {
    const first = await mlops('deploy', '--model', 'iris@1', '--json')
    expect(first.code, first.stderr).to.equal(0)
    const one = JSON.parse(first.stdout) as {pid: number; url: string; model: string}
    expect(one.model).to.equal('iris@1')

    const status = await mlops('status', '--json')
    expect(status.code, status.stderr).to.equal(0)
    expect(JSON.parse(status.stdout)).to.include({model: 'iris@1', pid: one.pid, running: true, ready: true})

    const predicted = await mlops('predict', '--data', '[[6.3, 3.3, 6.0, 2.5]]', '--expect', 'virginica')
    expect(predicted.code, predicted.stderr).to.equal(0)

    const second = await mlops('deploy', '--model', 'iris@2', '--json')
    expect(second.code, second.stderr).to.equal(0)
    const two = JSON.parse(second.stdout) as {pid: number; model: string}
    expect(two.model).to.equal('iris@2')
    expect(two.pid).to.not.equal(one.pid)
    expect(stillRunning(one.pid, 'serve'), 'the first server after the redeploy').to.equal(false)

    const removed = await mlops('delete')
    expect(removed.code, removed.stderr).to.equal(0)
    expect(stillRunning(two.pid, 'serve'), 'the second server after delete').to.equal(false)
    const after = await mlops('status')
    expect(after.code).to.equal(ExitCode.NOT_FOUND)
  })
})
