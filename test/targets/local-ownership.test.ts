import {expect} from 'chai'
import {type ChildProcess, spawn} from 'node:child_process'
import {once} from 'node:events'
import {existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {freePort, waitFor} from '../env/ports.js'
import {runCli, startCli} from '../helpers/cli.js'
import {fixture, tempDir} from '../helpers/stores.js'

/** A process that is not ours: Python's http.server, as a user might run on the side. */
async function stranger(): Promise<{child: ChildProcess; url: string}> {
  const port = await freePort()
  const child = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1'], {stdio: 'ignore'})
  const url = `http://127.0.0.1:${port}`
  await waitFor(
    async () =>
      fetch(url).then(
        () => true,
        () => false,
      ),
    'python3 -m http.server',
  )
  return {child, url}
}

const alive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null

describe('the local target only ever signals the server it started, one deploy at a time', function () {
  this.timeout(120_000)
  let project: string
  const local = () => join(project, '.mlops', 'local')
  const cli = (...args: string[]) => runCli(args, {}, project)
  const state = () => JSON.parse(readFileSync(join(project, '.mlops', 'state.json'), 'utf8'))
  const record = (local: Record<string, unknown>) => writeFileSync(join(project, '.mlops', 'state.json'), JSON.stringify({local}, null, 2))

  before(async () => {
    project = tempDir()
    writeFileSync(join(project, 'mlops.yaml'), 'name: iris\nmodel:\n  name: iris\n')
    expect((await cli('model', 'push', fixture('iris_svc.onnx'), '--labels', fixture('iris_labels.json'))).code).to.equal(0)
    expect((await cli('model', 'push', fixture('iris_logreg.onnx'), '--labels', fixture('iris_labels.json'))).code).to.equal(0)
  })

  after(async () => {
    await cli('delete')
  })

  it('state.json naming the pid and port of a stranger (python3 -m http.server): delete and deploy never signal it', async () => {
    const other = await stranger()
    try {
      const workdir = join(local(), 'workdir-abc-1234')
      mkdirSync(workdir, {recursive: true})
      const forged = {
        pid: other.child.pid,
        url: other.url,
        model: 'iris@1',
        sha256: 'a'.repeat(64),
        workdir,
        log: `${workdir}.log`,
        startedAt: '',
      }
      record(forged)
      const status = JSON.parse((await cli('status', '--json')).stdout)
      expect(status).to.include({running: false, ready: false})
      const deleted = await cli('delete')
      expect(deleted.code, deleted.stderr).to.equal(0)
      expect(deleted.stdout).to.contain(`mlops serve of iris@1 (pid ${other.child.pid}) no longer ran; removed its record`)
      expect(alive(other.child), 'python3 -m http.server was signalled').to.equal(true)
      record(forged)
      const deploy = await cli('deploy', '--model', 'iris@1', '--json')
      expect(deploy.code, deploy.stderr).to.equal(0)
      expect(JSON.parse(deploy.stdout).pid).to.not.equal(other.child.pid)
      expect(alive(other.child), 'python3 -m http.server was signalled by deploy').to.equal(true)
    } finally {
      other.child.kill()
    }
  })

  it('state.json whose work folder lies outside .mlops/local (../../victim) or whose pid is "1; rm" → exit 5, the folder kept, nothing signalled', async () => {
    const current = state().local
    const victim = tempDir('mlops-victim-')
    writeFileSync(join(victim, 'keep'), 'x')
    for (const change of [
      {workdir: victim, log: `${victim}.log`},
      {workdir: join(local(), '..', '..', 'victim-1')},
      {pid: '1; rm'},
      {url: 'http://example.com:80'},
    ]) {
      record({...current, ...change})
      for (const command of ['delete', 'status', 'deploy']) {
        const run = await cli(command)
        expect(run.code, `${command} with ${JSON.stringify(change)}: ${run.stderr}`).to.equal(ExitCode.INTEGRITY)
        expect(run.stderr).to.match(
          /^Error: .*state\.json records a local deployment that is not one mlops made; nothing was stopped or removed\nHint: /,
        )
      }
    }

    expect(existsSync(join(victim, 'keep'))).to.equal(true)
    record(current)
    expect(JSON.parse((await cli('status', '--json')).stdout)).to.include({running: true, ready: true})
  })

  it('a deploy while another holds the project lock (a live pid) → exit 4 naming it, nothing started; a lock left by a killed deploy (dead pid) is taken over', async () => {
    const before = state().local
    writeFileSync(join(local(), 'deploy.lock'), `${process.pid}\n`)
    const second = await cli('deploy', '--model', 'iris@2')
    expect(second.code).to.equal(ExitCode.CONFLICT)
    expect(second.stderr).to.equal(
      `Error: another mlops deploy (pid ${process.pid}) is deploying this project to the local target\nHint: wait for it to finish, then run mlops status\n`,
    )
    expect(state().local).to.deep.equal(before)
    expect(readdirSync(local()).filter(name => name.startsWith('workdir-'))).to.have.length(2)

    const dead = spawn(process.execPath, ['-e', '0'])
    await once(dead, 'exit')
    writeFileSync(join(local(), 'deploy.lock'), `${dead.pid}\n`)
    const taken = await cli('deploy', '--model', 'iris@2', '--json')
    expect(taken.code, taken.stderr).to.equal(0)
    expect(JSON.parse(taken.stdout).model).to.equal('iris@2')
    expect(existsSync(join(local(), 'deploy.lock'))).to.equal(false)
  })

  it('two deploys at once: never two servers; the one recorded is the one serving, and delete leaves none', async () => {
    const runs = await Promise.all([cli('deploy', '--model', 'iris@1', '--json'), cli('deploy', '--model', 'iris@1', '--json')])
    const codes = runs.map(run => run.code).sort()
    // Either the second waited for nothing (the first had finished: unchanged) or met the lock (exit 4).
    expect([
      [0, 0],
      [0, ExitCode.CONFLICT],
    ]).to.deep.include(codes)
    const served = runs.filter(run => run.code === 0).map(run => JSON.parse(run.stdout).pid as number)
    expect(new Set(served).size, 'two servers were started').to.equal(1)
    expect(state().local.pid).to.equal(served[0])
  })

  it('Ctrl-C (SIGINT) during a deploy → exit 130; what it started is gone, the previous server serves on, recorded as it was', async () => {
    const before = state().local
    const folders = () => readdirSync(local()).filter(name => name.startsWith('workdir-') && !name.endsWith('.log'))
    const {child, done} = startCli(['deploy', '--model', 'iris@2'], {}, project)
    // The observable event: this deploy's own work folder exists (it is pulling or starting its server).
    await waitFor(async () => folders().length > 1, 'the deploy to make its work folder', 30_000)
    child.kill('SIGINT')
    const run = await done
    expect(run.code, run.stderr).to.equal(130)
    expect(run.stderr).to.contain(`Error: mlops deploy interrupted (SIGINT): nothing new was started; ${before.model} still serves`)
    expect(state().local).to.deep.equal(before)
    expect(folders()).to.have.length(1)
    expect(existsSync(join(local(), 'deploy.lock'))).to.equal(false)
    expect(JSON.parse((await cli('status', '--json')).stdout)).to.include({running: true, ready: true, pid: before.pid})
  })

  it('SIGTERM during a deploy --json → exit 130, the error object on stdout (code INTERRUPTED) and the same Error: line on stderr', async () => {
    const before = state().local
    const folders = () => readdirSync(local()).filter(name => name.startsWith('workdir-') && !name.endsWith('.log'))
    const {child, done} = startCli(['deploy', '--model', 'iris@2', '--json'], {}, project)
    await waitFor(async () => folders().length > 1, 'the deploy to make its work folder', 30_000)
    child.kill('SIGTERM')
    const run = await done
    expect(run.code, run.stderr).to.equal(130)
    const message = `mlops deploy interrupted (SIGTERM): nothing new was started; ${before.model} still serves`
    expect(JSON.parse(run.stdout)).to.deep.equal({error: {code: 'INTERRUPTED', exitCode: 130, message}})
    expect(run.stderr).to.equal(`Error: ${message}\n`)
    expect(state().local).to.deep.equal(before)
  })
})
