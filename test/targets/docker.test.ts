import {runCommand} from '@oclif/test'
import {expect} from 'chai'
import Docker from 'dockerode'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {dockerEngine} from '../env/docker.js'
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
