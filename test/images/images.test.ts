import {runCommand} from '@oclif/test'
import {expect} from 'chai'
import Docker from 'dockerode'
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {PassThrough} from 'node:stream'

import {ExitCode} from '../../src/errors.js'
import {RUNTIME_LABELS} from '../../src/images/compat.js'
import {inspectModelFile} from '../../src/store/model-file.js'
import {dockerEngine, localRegistry} from '../env/docker.js'
import {labelledImage} from '../helpers/docker.js'
import {freePort, waitFor} from '../env/ports.js'
import {type StoreFixture, fixture, makeStore, tempDir} from '../helpers/stores.js'
import {restoreEnv} from '../helpers/env.js'

const root = join(import.meta.dirname, '..', '..')
const LOADER = 'mlops-test/loader:test'
const API = 'mlops-test/api:test'

interface Finished {
  code: number
  stdout: string
  stderr: string
}

describe('loader and API images on a real Docker engine', function () {
  this.timeout(10 * 60 * 1000)
  let docker: Docker
  let store: StoreFixture
  const volumes: string[] = []

  before(async () => {
    process.env.DOCKER_HOST = dockerEngine().dockerHost
    docker = new Docker()
    const built = await runCommand(['image', 'build', 'all', '--repository', 'mlops-test', '--tag', 'test', '--json'], {root})
    expect(built.error, built.stderr).to.equal(undefined)
    store = await makeStore('gcs')
    await store.store.push({
      model: await inspectModelFile(fixture('iris_svc.onnx'), fixture('iris_labels.json')),
      name: 'iris',
      metadata: {},
      workDir: tempDir(),
    })
  })

  after(async () => {
    for (const name of volumes)
      await docker
        .getVolume(name)
        .remove()
        .catch(() => {})
  })

  /** A named volume the uid-1000 containers can write, as Kubernetes' emptyDir is. */
  async function workdir(): Promise<string> {
    const name = `mlops-test-${Date.now()}-${volumes.length}`
    volumes.push(name)
    await docker.createVolume({Name: name})
    await run(LOADER, [], {User: 'root', Entrypoint: ['chmod', '0777', '/workdir']}, name)
    return name
  }

  /** Runs a container to completion with host networking and the volume at /workdir; never pulls. */
  async function run(
    image: string,
    cmd: string[],
    extra: Docker.ContainerCreateOptions,
    volume?: string,
    env: string[] = [],
  ): Promise<Finished> {
    const container = await docker.createContainer({
      Image: image,
      Cmd: cmd,
      Env: env,
      ...extra,
      HostConfig: {NetworkMode: 'host', Binds: volume ? [`${volume}:/workdir`] : []},
    })
    try {
      await container.start()
      const {StatusCode} = await container.wait()
      const logs = await container.logs({stdout: true, stderr: true, follow: false})
      const stdout = new PassThrough()
      const stderr = new PassThrough()
      const out: Buffer[] = []
      const err: Buffer[] = []
      stdout.on('data', chunk => out.push(chunk))
      stderr.on('data', chunk => err.push(chunk))
      docker.modem.demuxStream(new PassThrough().end(logs) as never, stdout, stderr)
      await new Promise(resolve => {
        setImmediate(resolve)
      })
      return {code: StatusCode, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString()}
    } finally {
      await container.remove({force: true})
    }
  }

  const storeEnv = () => [`MLOPS_STORE=${store.uri}`, `MLOPS_GCS_ENDPOINT=${store.env.MLOPS_GCS_ENDPOINT}`, 'MLOPS_STORE_TIMEOUT=3']
  /** The volume's files; a listing that failed is an error, not an empty volume. */
  const files = async (volume: string) => {
    const listing = await run(LOADER, [], {User: 'root', Entrypoint: ['ls', '-A', '/workdir']}, volume)
    expect(listing.code, `ls /workdir in ${volume}: ${listing.stderr}`).to.equal(0)
    return listing.stdout.split('\n').filter(Boolean).sort()
  }

  it('both images run as uid 1000 and carry the OCI and io.mlops labels', async () => {
    const api = await docker.getImage(API).inspect()
    const loader = await docker.getImage(LOADER).inspect()
    expect(api.Config.User).to.equal('1000:1000')
    expect(loader.Config.User).to.equal('1000:1000')
    expect(api.Config.Labels).to.include({'io.mlops.component': 'api', 'org.opencontainers.image.version': 'test'})
    expect(api.Config.Labels[RUNTIME_LABELS.opsets]).to.match(/^ai\.onnx=\d+,ai\.onnx\.ml=\d+$/)
    expect(loader.Config.Labels).to.include({'io.mlops.component': 'loader'})
    const probe = await run(LOADER, [], {Entrypoint: ['id', '-u']})
    expect(probe.stdout.trim()).to.equal('1000')
  })

  it('the loader image has no node_modules (the bundle is all it runs); the API image only ONNX Runtime, with the linux/x64 binaries alone', async () => {
    const loader = await run(LOADER, [], {Entrypoint: ['sh', '-c', 'ls -d /app/node_modules 2>&1; ls /app']})
    expect(loader.stdout).to.match(/No such file or directory/)
    expect(loader.stdout.trim().split('\n').slice(1)).to.deep.equal(['bin', 'dist', 'oclif.manifest.json', 'package.json', 'schemas'])
    const modules = await run(API, [], {Entrypoint: ['ls', '/app/node_modules']})
    expect(modules.stdout.trim().split('\n')).to.deep.equal(['onnxruntime-common', 'onnxruntime-node'])
    const api = await run(API, [], {Entrypoint: ['find', '/app/node_modules/onnxruntime-node/bin', '-mindepth', '3', '-maxdepth', '3']})
    expect(api.stdout.trim().split('\n')).to.deep.equal(['/app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64'])
  })

  it('loader container pulls into the volume, the API container serves it: predictions over HTTP', async () => {
    const volume = await workdir()
    const loaded = await run(
      LOADER,
      ['iris@1', '--to', '/workdir/model.onnx', '--labels-to', '/workdir/labels.json', '--termination-log', '/workdir/termination-log'],
      {},
      volume,
      storeEnv(),
    )
    expect(loaded.code, loaded.stderr).to.equal(0)
    expect(loaded.stderr).to.contain('"msg":"verified"')
    expect(await files(volume)).to.deep.equal(['labels.json', 'model.onnx', 'termination-log'])
    const summary = JSON.parse((await run(LOADER, [], {Entrypoint: ['cat', '/workdir/termination-log']}, volume)).stdout)
    expect(summary).to.include({ok: true, ref: 'iris@1', sha256: 'd1f497a1f053d7cc43830cc84d0ecdc65e2dd370a4d3dedd4a49b13523e3a067'})

    const port = await freePort()
    const container = await docker.createContainer({
      Image: API,
      Env: ['LABEL_FILEPATH=/workdir/labels.json', `PORT=${port}`, 'MLOPS_HOST=127.0.0.1'],
      HostConfig: {NetworkMode: 'host', Binds: [`${volume}:/workdir`]},
    })
    try {
      await container.start()
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/ready`)).ok, 'the API container to be ready', 60_000)
      const response = await fetch(`http://127.0.0.1:${port}/predict/label`, {
        method: 'POST',
        headers: {'content-type': 'application/json'},
        body: JSON.stringify({data: [[6.3, 3.3, 6, 2.5]]}),
      })
      expect(await response.json()).to.deep.equal({prediction: 'virginica'})
      await container.stop({t: 10})
      expect((await container.wait()).StatusCode).to.equal(0)
    } finally {
      await container.remove({force: true})
    }
  })

  it('loader against a missing version exits 3; the volume holds no model', async () => {
    const volume = await workdir()
    const result = await run(LOADER, ['iris@9', '--to', '/workdir/model.onnx'], {}, volume, storeEnv())
    expect(result.code).to.equal(ExitCode.NOT_FOUND)
    expect(await files(volume)).to.deep.equal([])
  })

  it('loader against a corrupted object exits 5; the volume holds no model file', async () => {
    const corrupt = await makeStore('gcs')
    await corrupt.store.push({model: await inspectModelFile(fixture('iris_svc.onnx')), name: 'iris', metadata: {}, workDir: tempDir()})
    await corrupt.corrupt('iris/1/model.onnx', Buffer.alloc(2486, 7))
    const volume = await workdir()
    const result = await run(LOADER, ['iris@1', '--to', '/workdir/model.onnx'], {}, volume, [
      `MLOPS_STORE=${corrupt.uri}`,
      `MLOPS_GCS_ENDPOINT=${corrupt.env.MLOPS_GCS_ENDPOINT}`,
    ])
    expect(result.code).to.equal(ExitCode.INTEGRITY)
    expect(await files(volume)).to.deep.equal([])
  })

  it('the API container without a model file exits 3 naming the file (no fallback model)', async () => {
    const volume = await workdir()
    const result = await run(API, [], {}, volume, [`PORT=${await freePort()}`])
    expect(result.code).to.equal(ExitCode.NOT_FOUND)
    expect(result.stderr).to.contain('model file /workdir/model.onnx does not exist')
  })

  it('a failing RUN step → exit 10 naming the step', async () => {
    // A base image without a shell or npm: the API image's RUN npm ci step fails inside the engine
    // (the loader image has no RUN step).
    await labelledImage(docker, 'mlops-test/plain:1', {'org.opencontainers.image.title': 'plain'})
    const built = await runCommand(
      ['image', 'build', 'api', '--repository', 'mlops-test', '--tag', 'broken', '--base-image', 'mlops-test/plain:1'],
      {
        root,
      },
    )
    expect((built.error as {oclif?: {exit?: number}})?.oclif?.exit).to.equal(ExitCode.BUILD_FAILED)
    expect(built.stderr).to.match(/^Error: api image: Step \d+\/\d+ : RUN npm ci .* failed: /)
  })

  it('daemon unreachable → exit 7 naming DOCKER_HOST', async () => {
    const saved = process.env.DOCKER_HOST
    process.env.DOCKER_HOST = 'unix:///tmp/mlops-no-such-docker.sock'
    try {
      const {error, stderr} = await runCommand(['image', 'build', 'api'], {root})
      expect((error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.UNAVAILABLE)
      expect(stderr).to.contain('cannot reach the Docker engine at unix:///tmp/mlops-no-such-docker.sock')
    } finally {
      restoreEnv('DOCKER_HOST', saved)
    }
  })
})

describe('mlops image build without its base image', function () {
  this.timeout(5 * 60 * 1000)

  before(() => {
    process.env.DOCKER_HOST = dockerEngine().dockerHost
  })

  it('a base image the engine has not got and cannot pull → exit 10 naming the image and how to provide it', async () => {
    const missing = `mlops-test/absent-base:${Date.now()}`
    const built = await runCommand(['image', 'build', 'loader', '--repository', 'mlops-test', '--tag', 'nobase', '--base-image', missing], {
      root,
    })
    expect((built.error as {oclif?: {exit?: number}})?.oclif?.exit).to.equal(ExitCode.BUILD_FAILED)
    expect(built.stderr).to.contain(`Error: loader image: base image ${missing} is not in the Docker engine at ${process.env.DOCKER_HOST}`)
    expect(built.stderr).to.contain(`Hint: docker pull ${missing} where the engine can reach its registry, or name an image the engine has`)
  })
})

describe('mlops image push to a real registry', function () {
  this.timeout(10 * 60 * 1000)
  let registry: {address: string; stop: () => void}
  let docker: Docker
  let project: string
  const saved = {DOCKER_CONFIG: process.env.DOCKER_CONFIG}

  before(async () => {
    process.env.DOCKER_HOST = dockerEngine().dockerHost
    docker = new Docker()
    registry = localRegistry('ci', 'secret-1')
    // The images the first suite built, under names in this registry (as image build would name them).
    for (const component of ['loader', 'api'])
      await docker.getImage(`mlops-test/${component}:test`).tag({repo: `${registry.address}/team/${component}`, tag: 'v1'})
    project = tempDir()
    writeFileSync(join(project, 'mlops.yaml'), `name: iris\nimage:\n  repository: ${registry.address}/team\n  tag: v1\n`)
  })

  after(() => {
    registry?.stop()
    restoreEnv('DOCKER_CONFIG', saved.DOCKER_CONFIG)
    delete process.env.MLOPS_REGISTRY_USERNAME
    delete process.env.MLOPS_REGISTRY_PASSWORD
  })

  const dockerConfig = (auths: Record<string, unknown>) => {
    const dir = tempDir()
    mkdirSync(dir, {recursive: true})
    writeFileSync(join(dir, 'config.json'), JSON.stringify({auths}))
    process.env.DOCKER_CONFIG = dir
  }

  const push = async (...args: string[]) => runCommand(['image', 'push', ...args, '--config', join(project, 'mlops.yaml')], {root})

  it('pushes both images with credentials from DOCKER_CONFIG and records digests that the registry confirms', async () => {
    dockerConfig({[registry.address]: {auth: Buffer.from('ci:secret-1').toString('base64')}})
    const {error, stdout, stderr} = await push('--json')
    expect(error, stderr).to.equal(undefined)
    const result = JSON.parse(stdout)
    expect(result.images.map((i: {component: string}) => i.component)).to.deep.equal(['loader', 'api'])
    const state = JSON.parse(readFileSync(join(project, '.mlops', 'state.json'), 'utf8'))
    for (const component of ['loader', 'api']) {
      const recorded = state.images[component]
      expect(recorded.pinned).to.equal(`${registry.address}/team/${component}@${recorded.digest}`)
      const manifest = await fetch(`http://${registry.address}/v2/team/${component}/manifests/v1`, {
        method: 'HEAD',
        headers: {
          authorization: `Basic ${Buffer.from('ci:secret-1').toString('base64')}`,
          accept: 'application/vnd.docker.distribution.manifest.v2+json',
        },
      })
      expect(manifest.headers.get('docker-content-digest')).to.equal(recorded.digest)
    }
  })

  it('wrong credentials (MLOPS_REGISTRY_USERNAME/PASSWORD) → exit 6 with a clear message', async () => {
    process.env.MLOPS_REGISTRY_USERNAME = 'ci'
    process.env.MLOPS_REGISTRY_PASSWORD = 'wrong'
    try {
      const {error, stderr} = await push('api')
      expect((error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.PERMISSION)
      expect(stderr).to.match(
        new RegExp(`^Error: ${registry.address.replace('.', '\\.')} refused the push: .*(unauthorized|authentication required)`),
      )
      expect(stderr).to.contain('Hint: the credentials were rejected')
    } finally {
      delete process.env.MLOPS_REGISTRY_USERNAME
      delete process.env.MLOPS_REGISTRY_PASSWORD
    }
  })

  it('no credentials at all → exit 6 suggesting docker login', async () => {
    dockerConfig({})
    const {error, stderr} = await push('loader')
    expect((error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.PERMISSION)
    expect(stderr).to.contain(`Hint: no credentials for ${registry.address}: docker login ${registry.address}`)
  })

  it('an image that was never built → exit 3', async () => {
    const {error, stderr} = await push('api', '--tag', 'never-built')
    expect((error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.NOT_FOUND)
    expect(stderr).to.contain(`Error: image ${registry.address}/team/api:never-built is not in the Docker engine`)
  })
})
