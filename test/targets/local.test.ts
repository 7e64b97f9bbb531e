import {expect} from 'chai'
import {once} from 'node:events'
import {existsSync, mkdirSync, readdirSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {basename, join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {runCli} from '../helpers/cli.js'
import {stillRunning} from '../helpers/processes.js'
import {fixture, tempDir} from '../helpers/stores.js'

describe('the local target: loader step + mlops serve in the background', function () {
  this.timeout(120_000)
  let project: string
  const cli = (...args: string[]) => runCli(args, {}, project)

  before(async () => {
    project = tempDir()
    writeFileSync(join(project, 'mlops.yaml'), 'name: iris\nmodel:\n  name: iris\n')
    expect((await cli('model', 'push', fixture('iris_svc.onnx'), '--labels', fixture('iris_labels.json'))).code).to.equal(0)
    expect((await cli('model', 'push', fixture('iris_logreg.onnx'), '--labels', fixture('iris_labels.json'))).code).to.equal(0)
  })

  after(async () => {
    await cli('delete', '--target', 'local')
  })

  it('predict, status and delete before any deploy → exit 3 with a hint', async () => {
    const predict = await cli('predict', '--data', '[[6.3, 3.3, 6.0, 2.5]]')
    expect(predict.code).to.equal(ExitCode.NOT_FOUND)
    expect(predict.stderr).to.contain('Hint: deploy first: mlops deploy --target local')
    const status = await cli('status')
    expect(status.code).to.equal(ExitCode.NOT_FOUND)
    expect(status.stderr).to.equal('Error: nothing is deployed on the local target\nHint: mlops deploy --target local\n')
    const remove = await cli('delete')
    expect(remove.code).to.equal(ExitCode.NOT_FOUND)
    expect(remove.stderr).to.match(/^Error: nothing is deployed on the local target\n/)
  })

  it('cluster-only flags on local → exit 2 naming them, nothing started; rollback → exit 2; docker status --namespace, delete --context → exit 2 (MLOPS_NAMESPACE is no error)', async () => {
    const dryRun = await cli('deploy', '--model', 'iris@1', '--dry-run', 'server', '--set', 'replicas=3')
    expect(dryRun.code).to.equal(ExitCode.USAGE)
    expect(dryRun.stderr).to.equal('Error: --dry-run, --set apply to --target k8s, not local\nHint: drop it, or pass --target k8s\n')
    expect((await cli('status')).code).to.equal(ExitCode.NOT_FOUND)
    const rollback = await cli('rollback')
    expect(rollback.code).to.equal(ExitCode.USAGE)
    expect(rollback.stderr).to.match(
      /^Error: rollback works on --target k8s, which keeps revisions; the local target does not\nHint: deploy the earlier version instead/,
    )
    const status = await cli('status', '--namespace', 'iris')
    expect(status.code).to.equal(ExitCode.USAGE)
    expect(status.stderr).to.equal('Error: --namespace applies to --target k8s, not local\nHint: drop it, or pass --target k8s\n')
    const remove = await cli('delete', '--target', 'docker', '--context', 'prod', '--yes')
    expect(remove.code).to.equal(ExitCode.USAGE)
    expect(remove.stderr).to.match(/^Error: --context applies to --target k8s, not docker\n/)
    // A namespace exported for the cluster is not an error on the local target.
    const fromEnv = await runCli(['status'], {MLOPS_NAMESPACE: 'iris'}, project)
    expect(fromEnv.code).to.equal(ExitCode.NOT_FOUND)
  })

  it('deploy (the default target) pulls the model, starts mlops serve and waits for /ready; predict and status use it', async () => {
    const deploy = await cli('deploy', '--model', 'iris@1', '--json')
    expect(deploy.code, deploy.stderr).to.equal(0)
    const result = JSON.parse(deploy.stdout)
    expect(result).to.include({target: 'local', model: 'iris@1', unchanged: false})
    expect(result.url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/)
    const predict = await cli('predict', '--data', '[[6.3, 3.3, 6.0, 2.5]]', '--expect', 'virginica')
    expect(predict.code, predict.stderr).to.equal(0)
    const status = JSON.parse((await cli('status', '--json')).stdout)
    expect(status).to.include({target: 'local', model: 'iris@1', running: true, ready: true})
  })

  it('the same deploy again changes nothing; a new version replaces the server', async () => {
    const again = JSON.parse((await cli('deploy', '--model', 'iris@1', '--json')).stdout)
    expect(again.unchanged).to.equal(true)
    const replaced = JSON.parse((await cli('status', '--json')).stdout)
    expect(stillRunning(replaced.pid, replaced.workdir), 'the server of iris@1 runs').to.equal(true)
    const next = JSON.parse((await cli('deploy', '--model', 'iris@2', '--json')).stdout)
    expect(next).to.include({model: 'iris@2', unchanged: false})
    expect(next.pid).to.not.equal(again.pid)
    const metadata = (await (await fetch(`${next.url}/metadata`)).json()) as {version: string}
    expect(metadata.version).to.equal('2')
    // Replaced means gone, as the process table and the file system show: not only a new PID in the output.
    expect(stillRunning(replaced.pid, replaced.workdir), `the server of iris@1 (pid ${replaced.pid}) still runs`).to.equal(false)
    const current = JSON.parse((await cli('status', '--json')).stdout)
    expect(current.pid).to.equal(next.pid)
    expect(stillRunning(current.pid, current.workdir), 'the server of iris@2 runs').to.equal(true)
    expect(existsSync(replaced.workdir)).to.equal(false)
  })

  it('a redeploy that fails (its port taken) leaves the serving server serving its own model and files; nothing of the failed one stays', async () => {
    const before = JSON.parse((await cli('status', '--json')).stdout)
    const blocker = createServer().listen(0, '127.0.0.1')
    await once(blocker, 'listening')
    const port = (blocker.address() as {port: number}).port
    let failedLog = ''
    try {
      const failed = await cli('deploy', '--model', 'iris@1', '--port', String(port))
      expect(failed.code).to.equal(ExitCode.ROLLOUT_FAILED)
      expect(failed.stderr).to.match(
        /^Error: mlops serve exited before it was ready: .*serve failed: port \d+ on 127\.0\.0\.1 is already in use; the server that was serving still is$/m,
      )
      failedLog = /Hint: the whole log is in (\S+)/.exec(failed.stderr)![1]
    } finally {
      blocker.close()
    }

    const after = JSON.parse((await cli('status', '--json')).stdout)
    expect(after).to.include({pid: before.pid, model: 'iris@2', running: true, ready: true, workdir: before.workdir})
    expect(((await (await fetch(`${before.url}/metadata`)).json()) as {version: string}).version).to.equal('2')
    expect(readdirSync(before.workdir).sort()).to.deep.equal(['labels.json', 'model.onnx'])
    // The failed server's log stays for the user (the hint names it) until the next deploy; its model folder is gone.
    expect(
      readdirSync(join(project, '.mlops', 'local'))
        .filter(name => name.startsWith('workdir-'))
        .sort(),
    ).to.deep.equal([basename(before.workdir), basename(before.log), basename(failedLog)].sort())
  })

  it('a deploy killed before it finished (kill -9) leaves folders that the next deploy removes', async () => {
    const before = JSON.parse((await cli('status', '--json')).stdout)
    const abandoned = join(project, '.mlops', 'local', 'workdir-zzzz-999999999')
    mkdirSync(abandoned)
    writeFileSync(join(abandoned, 'model.onnx'), 'partial')
    writeFileSync(`${abandoned}.log`, '')
    const next = await cli('deploy', '--model', 'iris@1')
    expect(next.code, next.stderr).to.equal(0)
    const {workdir, log} = JSON.parse((await cli('status', '--json')).stdout)
    expect(
      readdirSync(join(project, '.mlops', 'local'))
        .filter(name => name.startsWith('workdir-'))
        .sort(),
    ).to.deep.equal([basename(workdir), basename(log)].sort())
    expect(existsSync(before.workdir)).to.equal(false)
    const back = await cli('deploy', '--model', 'iris@2')
    expect(back.code, back.stderr).to.equal(0)
  })

  it('delete stops the server (its process is gone, its files removed); status then says nothing is deployed', async () => {
    const {url, pid, workdir} = JSON.parse((await cli('status', '--json')).stdout)
    expect(stillRunning(pid, workdir)).to.equal(true)
    const deleted = await cli('delete')
    expect(deleted.code, deleted.stderr).to.equal(0)
    expect(deleted.stdout).to.match(new RegExp(`^stopped mlops serve \\(pid ${pid}, iris@2\\)`))
    expect(stillRunning(pid, workdir), `pid ${pid} still runs mlops serve`).to.equal(false)
    expect(existsSync(workdir)).to.equal(false)
    expect(
      await fetch(`${url}/health`).then(
        () => 'up',
        () => 'down',
      ),
    ).to.equal('down')
    expect((await cli('status')).code).to.equal(ExitCode.NOT_FOUND)
  })
})
