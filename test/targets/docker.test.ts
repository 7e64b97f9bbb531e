import {runCommand} from '@oclif/test'
import {expect} from 'chai'
import {spawn} from 'node:child_process'
import Docker from 'dockerode'
import {existsSync, mkdirSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {dockerEngine} from '../env/docker.js'
import {waitFor} from '../env/ports.js'
import {startCli} from '../helpers/cli.js'
import {writeSlowLoadingOnnx} from '../helpers/onnx-writer.js'
import {fixture, tempDir} from '../helpers/stores.js'

const root = join(import.meta.dirname, '..', '..')

describe('the docker target: loader container into a volume, then the API container', function () {
  this.timeout(10 * 60 * 1000)
  let project: string
  const mlops = async (...args: string[]) => {
    const result = await runCommand([...args, '--config', join(project, 'mlops.yaml')], {root})
    return {...result, exitCode: (result.error as {oclif?: {exit?: number}} | undefined)?.oclif?.exit ?? 0}
  }

  before(async () => {
    process.env.DOCKER_HOST = dockerEngine().dockerHost
    project = tempDir()
    // A local store: the loader container reads it through a read-only bind mount.
    writeFileSync(
      join(project, 'mlops.yaml'),
      'name: iris\nmodel:\n  name: iris\nimage:\n  repository: mlops-test\n  tag: test\ndeploy:\n  target: docker\n',
    )
    const built = await mlops('image', 'build', 'all')
    expect(built.exitCode, built.stderr).to.equal(0)
    for (const file of ['iris_svc.onnx', 'iris_logreg.onnx'])
      expect((await mlops('model', 'push', fixture(file), '--labels', fixture('iris_labels.json'))).exitCode).to.equal(0)
  })

  after(async () => {
    await mlops('delete', '--yes')
  })

  it('deploys, serves predictions, shows status; a new version replaces the container', async () => {
    const deployed = await mlops('deploy', '--model', 'iris@1', '--json')
    expect(deployed.exitCode, deployed.stderr).to.equal(0)
    expect(JSON.parse(deployed.stdout)).to.include({target: 'docker', model: 'iris@1'})
    const predicted = await mlops('predict', '--data', '[[6.3,3.3,6.0,2.5]]', '--expect', 'virginica')
    expect(predicted.exitCode, predicted.stderr).to.equal(0)
    const status = JSON.parse((await mlops('status', '--json')).stdout)
    expect(status).to.include({target: 'docker', model: 'iris@1', running: true, ready: true})
    expect(status.container).to.match(/^mlops-iris-api-1-/)
    const next = await mlops('deploy', '--model', 'iris@2', '--json')
    expect(JSON.parse(next.stdout).model).to.equal('iris@2')
    const metadata = (await (await fetch(`${JSON.parse(next.stdout).url}/metadata`)).json()) as {version: string}
    expect(metadata.version).to.equal('2')
  })

  it('bad inputs: an unknown version → exit 3, an image never built → exit 3; a loader that fails → exit 9 with its error', async () => {
    expect((await mlops('deploy', '--model', 'iris@9')).exitCode).to.equal(ExitCode.NOT_FOUND)
    const missing = await mlops('deploy', '--model', 'iris@1', '--tag', 'never-built')
    expect(missing.exitCode).to.equal(ExitCode.NOT_FOUND)
    expect(missing.stderr).to.contain('image mlops-test/loader:never-built is not in the Docker engine')
    // The stored object of version 2 is corrupted after push: the loader container refuses it.
    writeFileSync(join(project, '.mlops', 'store', 'iris', '2', 'model.onnx'), Buffer.alloc(519, 1))
    const failed = await mlops('deploy', '--model', 'iris@2')
    expect(failed.exitCode).to.equal(ExitCode.ROLLOUT_FAILED)
    expect(failed.stderr).to.match(/^Error: the model loader failed \(exit 5\): INTEGRITY: /)
    // What was serving before keeps serving.
    const status = JSON.parse((await mlops('status', '--json')).stdout)
    expect(status).to.include({model: 'iris@2', running: true, ready: true})
  })

  it('a deploy while another holds the project lock (a live pid) → exit 4 naming the docker target, nothing started', async () => {
    const before = JSON.parse((await mlops('status', '--json')).stdout)
    // The holder: a live process other than this one (the commands run in this process here).
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], {stdio: 'ignore'})
    mkdirSync(join(project, '.mlops', 'docker'), {recursive: true})
    writeFileSync(join(project, '.mlops', 'docker', 'deploy.lock'), `${holder.pid}\n`)
    try {
      const second = await mlops('deploy', '--model', 'iris@1')
      expect(second.exitCode).to.equal(ExitCode.CONFLICT)
      expect(second.stderr).to.contain(`Error: another mlops deploy (pid ${holder.pid}) is deploying this project to the docker target`)
    } finally {
      holder.kill('SIGKILL')
      rmSync(join(project, '.mlops', 'docker', 'deploy.lock'), {force: true})
    }

    expect(JSON.parse((await mlops('status', '--json')).stdout)).to.deep.equal(before)
  })

  it('Ctrl-C (SIGINT) while the new API container loads → exit 130; its container and volume are gone, the previous one serves on, recorded', async () => {
    const docker = new Docker()
    const before = JSON.parse((await mlops('status', '--json')).stdout) as {model: string; container: string}
    writeSlowLoadingOnnx(join(project, 'slow.onnx'), 200_000)
    expect((await mlops('model', 'push', join(project, 'slow.onnx'), '--name', 'iris', '--version', 'slow')).exitCode).to.equal(0)
    const ours = async (role: string) =>
      (await docker.listContainers({all: true, filters: {label: ['io.mlops.project=iris', `io.mlops.role=${role}`]}})).filter(
        container => container.Names[0] !== `/${before.container}`,
      )
    const {child, done} = startCli(['deploy', '--model', 'iris@slow', '--config', join(project, 'mlops.yaml')], {}, project)
    // The observable event: this deploy's API container runs (loading the slow model).
    await waitFor(async () => (await ours('api')).some(container => container.State === 'running'), 'the new API container', 120_000)
    const deploy = (await ours('api'))[0].Labels['io.mlops.deploy']
    child.kill('SIGINT')
    const run = await done
    expect(run.code, run.stderr).to.equal(ExitCode.INTERRUPTED)
    expect(run.stderr).to.contain(`Error: mlops deploy interrupted (SIGINT): nothing new was started; ${before.model} still serves`)
    const left = await docker.listContainers({all: true, filters: {label: [`io.mlops.deploy=${deploy}`]}})
    const volumes = (await docker.listVolumes({filters: {label: [`io.mlops.deploy=${deploy}`]}})).Volumes ?? []
    expect({containers: left.length, volumes: volumes.length}).to.deep.equal({containers: 0, volumes: 0})
    expect(JSON.parse((await mlops('status', '--json')).stdout)).to.include({
      model: before.model,
      container: before.container,
      running: true,
      ready: true,
    })
    expect(existsSync(join(project, '.mlops', 'docker', 'deploy.lock'))).to.equal(false)
  })

  it('delete removes the container and the volume', async () => {
    const docker = new Docker()
    const {container, volume} = JSON.parse((await mlops('status', '--json')).stdout)
    const deleted = await mlops('delete')
    expect(deleted.exitCode, deleted.stderr).to.equal(0)
    expect(
      await docker
        .getContainer(container)
        .inspect()
        .then(
          () => 'exists',
          () => 'gone',
        ),
    ).to.equal('gone')
    expect(
      await docker
        .getVolume(volume)
        .inspect()
        .then(
          () => 'exists',
          () => 'gone',
        ),
    ).to.equal('gone')
    const leftovers = await docker.listContainers({all: true, filters: {label: ['io.mlops.project=iris']}})
    expect(leftovers).to.deep.equal([])
    expect((await mlops('status')).exitCode).to.equal(ExitCode.NOT_FOUND)
  })
})
