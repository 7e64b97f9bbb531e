import {expect} from 'chai'
import Docker from 'dockerode'
import {copyFileSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {extract} from 'tar-stream'
import {parseDocument} from 'yaml'

import {ExitCode} from '../../src/errors.js'
import {inspectImage} from '../../src/images/docker.js'
import {dockerEngine, foreignBaseImage, localRegistry} from '../env/docker.js'
import {freePort, waitFor} from '../env/ports.js'
import {runCli} from '../helpers/cli.js'
import {fixture, randomBytes, tempDir} from '../helpers/stores.js'

/**
 * Images for linux/amd64 and linux/arm64 from one amd64 engine: the arm64 build's steps and the
 * arm64 API image itself run under QEMU user emulation (Debian's qemu-user-static, registered
 * with binfmt_misc by test/env/docker/base-image.sh), from an arm64 stand-in for node:20-slim.
 * Then image push joins them into one index in a registry with basic auth. The real node pulling
 * the index's amd64 entry is test/e2e/multi-platform.test.ts.
 */
describe('images for two platforms (linux/amd64 here, linux/arm64 under QEMU) and their index', function () {
  this.timeout(10 * 60 * 1000)
  let docker: Docker
  let registry: {address: string; stop: () => void}
  let project: string
  let env: Record<string, string>
  let bases: {amd64: string; arm64: string}
  const password = randomBytes(12).toString('hex')
  const mlops = (...args: string[]) => runCli(args, env, project)
  const ref = (component: string, tag: string) => `${registry.address}/mp/${component}:${tag}`
  const inEngine = async (image: string) => (await inspectImage(docker, image)) !== undefined
  const registryGet = async (path: string, accept: string) =>
    fetch(`http://${registry.address}/v2/mp/${path}`, {
      headers: {accept, authorization: `Basic ${Buffer.from(`mp-ci:${password}`).toString('base64')}`},
    })

  before(async function () {
    // A fresh machine makes the arm64 stand-in (Debian packages, Node's arm64 build) and builds the
    // API image's npm step under emulation: minutes on a busy 2-core machine.
    this.timeout(30 * 60 * 1000)
    const engine = dockerEngine()
    docker = new Docker()
    bases = {amd64: engine.baseImage, arm64: foreignBaseImage('arm64')}
    registry = localRegistry('mp-ci', password)
    const workdir = tempDir('mlops-mp-')
    env = {
      DOCKER_HOST: engine.dockerHost,
      DOCKER_CONFIG: tempDir(),
      MLOPS_REGISTRY_USERNAME: 'mp-ci',
      MLOPS_REGISTRY_PASSWORD: password,
      MLOPS_BASE_IMAGE: `linux/amd64=${bases.amd64},linux/arm64=${bases.arm64}`,
    }
    const init = await runCli(['init', 'iris', '--yes', '--image-repository', `${registry.address}/mp`], env, workdir)
    expect(init.code, init.stderr).to.equal(0)
    project = join(workdir, 'iris')
    const config = parseDocument(readFileSync(join(project, 'mlops.yaml'), 'utf8'))
    config.setIn(['image', 'tag'], 'mp')
    config.setIn(['image', 'platforms'], ['linux/amd64', 'linux/arm64'])
    writeFileSync(join(project, 'mlops.yaml'), config.toString())
  })

  after(() => registry?.stop())

  let built: Array<{component: string; platform: string; id: string; tags: string[]}>

  it("image build (image.platforms: both): each component for each platform, tagged <tag>-<arch> and the engine's also <tag>, labelled with both", async () => {
    const run = await mlops('image', 'build', '--json')
    expect(run.code, run.stderr).to.equal(0)
    built = (JSON.parse(run.stdout) as {images: typeof built}).images
    expect(built.map(image => [image.component, image.platform, image.tags])).to.deep.equal([
      ['loader', 'linux/amd64', [ref('loader', 'mp-amd64'), ref('loader', 'mp')]],
      ['loader', 'linux/arm64', [ref('loader', 'mp-arm64')]],
      ['api', 'linux/amd64', [ref('api', 'mp-amd64'), ref('api', 'mp')]],
      ['api', 'linux/arm64', [ref('api', 'mp-arm64')]],
    ])
    for (const [component, arch] of [
      ['loader', 'amd64'],
      ['loader', 'arm64'],
      ['api', 'amd64'],
      ['api', 'arm64'],
    ]) {
      const info = await docker.getImage(ref(component, `mp-${arch}`)).inspect()
      expect([info.Os, info.Architecture], `${component} ${arch}`).to.deep.equal(['linux', arch])
      expect(info.Config.Labels['io.mlops.platforms']).to.equal('linux/amd64,linux/arm64')
    }
  })

  /** The files under a folder of an image, listed from a container that is created, never started. */
  async function filesIn(image: string, path: string): Promise<string[]> {
    const container = await docker.createContainer({Image: image, Entrypoint: ['/bin/true']})
    try {
      const archive = await container.getArchive({path})
      const names: string[] = []
      const entries = extract()
      entries.on('entry', (header, stream, next) => {
        names.push(header.name)
        stream.on('end', next)
        stream.resume()
      })
      await new Promise((resolve, reject) => {
        entries.on('finish', () => resolve(undefined))
        entries.on('error', reject)
        archive.pipe(entries)
      })
      return names
    } finally {
      await container.remove({force: true})
    }
  }

  it("each API image keeps only its own platform's ONNX Runtime (linux/arm64 and linux/x64)", async () => {
    const runtimes = async (arch: string) =>
      (await filesIn(ref('api', `mp-${arch}`), '/app/node_modules/onnxruntime-node/bin'))
        .filter(name => name.endsWith('onnxruntime_binding.node'))
        .map(name => name.replace(/^bin\/napi-v\d+\//, ''))
    expect(await runtimes('arm64')).to.deep.equal(['linux/arm64/onnxruntime_binding.node'])
    expect(await runtimes('amd64')).to.deep.equal(['linux/x64/onnxruntime_binding.node'])
  })

  it('the arm64 API image serves a prediction under emulation (its node is arm64)', async () => {
    const image = ref('api', 'mp-arm64')
    const arch = await runContainer(image, ['-p', 'process.arch'], {Entrypoint: ['node']})
    expect(arch.trim()).to.equal('arm64')

    const workdir = tempDir('mlops-mp-workdir-')
    copyFileSync(fixture('iris_svc.onnx'), join(workdir, 'model.onnx'))
    copyFileSync(fixture('iris_labels.json'), join(workdir, 'labels.json'))
    // ONNX Runtime's CPU probe (pytorch/cpuinfo), built for arm64, crashes (SIGSEGV) on the x86
    // /proc/cpuinfo it reads under user emulation; a real arm64 machine's has the fields it
    // expects. So the container gets an arm64 one (runc allows this path, as lxcfs uses it).
    mkdirSync(join(workdir, 'proc'))
    const cpu = (n: number) =>
      `processor\t: ${n}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics cpuid asimdrdm lrcpc dcpop asimddp\n` +
      'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n'
    writeFileSync(join(workdir, 'proc', 'cpuinfo'), cpu(0) + cpu(1))
    const port = await freePort()
    const container = await docker.createContainer({
      Image: image,
      Env: [`PORT=${port}`, 'MLOPS_HOST=127.0.0.1', 'LABEL_FILEPATH=/workdir/labels.json', 'MLOPS_WORKERS=1'],
      HostConfig: {
        NetworkMode: 'host',
        Binds: [
          `${workdir}/model.onnx:/workdir/model.onnx:ro`,
          `${workdir}/labels.json:/workdir/labels.json:ro`,
          `${workdir}/proc/cpuinfo:/proc/cpuinfo:ro`,
        ],
      },
    })
    try {
      await container.start()
      await waitFor(
        async () => (await fetch(`http://127.0.0.1:${port}/ready`).catch(() => undefined))?.ok === true,
        'the arm64 server ready',
        240_000,
      )
      const answer = await fetch(`http://127.0.0.1:${port}/predict/label`, {
        method: 'POST',
        headers: {'content-type': 'application/json'},
        body: JSON.stringify({data: [[6.3, 3.3, 6.0, 2.5]]}),
      })
      expect(answer.status).to.equal(200)
      expect(JSON.stringify(await answer.json())).to.contain('virginica')
    } finally {
      await container.remove({force: true})
    }
  })

  /** A container run to its end (host network, never pulled); its output. */
  async function runContainer(image: string, cmd: string[], extra: Docker.ContainerCreateOptions): Promise<string> {
    const container = await docker.createContainer({Image: image, Cmd: cmd, Tty: true, HostConfig: {NetworkMode: 'host'}, ...extra})
    try {
      await container.start()
      const {StatusCode} = (await container.wait()) as {StatusCode: number}
      const output = (await container.logs({stdout: true, stderr: true})).toString()
      expect(StatusCode, output).to.equal(0)
      return output
    } finally {
      await container.remove({force: true})
    }
  }

  it("image push: each platform's image, then one index under <tag> listing both; state.json pins the index", async () => {
    const run = await mlops('image', 'push', '--json')
    expect(run.code, run.stderr).to.equal(0)
    const pushed = (JSON.parse(run.stdout) as {images: Array<{component: string; pinned: string; digest: string; platforms: string[]}>})
      .images
    expect(pushed.map(image => [image.component, image.platforms])).to.deep.equal([
      ['loader', ['linux/amd64', 'linux/arm64']],
      ['api', ['linux/amd64', 'linux/arm64']],
    ])
    for (const image of pushed) {
      const response = await registryGet(`${image.component}/manifests/mp`, 'application/vnd.docker.distribution.manifest.list.v2+json')
      expect(response.status).to.equal(200)
      expect(response.headers.get('docker-content-digest')).to.equal(image.digest)
      const index = (await response.json()) as {
        mediaType: string
        manifests: Array<{digest: string; platform: {architecture: string; os: string}}>
      }
      expect(index.mediaType).to.equal('application/vnd.docker.distribution.manifest.list.v2+json')
      const entries = index.manifests.map(m => [m.platform.os, m.platform.architecture, m.digest])
      for (const arch of ['amd64', 'arm64']) {
        const own = await registryGet(`${image.component}/manifests/mp-${arch}`, 'application/vnd.docker.distribution.manifest.v2+json')
        expect(own.status).to.equal(200)
        expect(entries).to.deep.include(['linux', arch, own.headers.get('docker-content-digest')])
      }
      expect(entries).to.have.length(2)
      expect(image.pinned).to.equal(`${registry.address}/mp/${image.component}@${image.digest}`)
    }

    const state = JSON.parse(readFileSync(join(project, '.mlops', 'state.json'), 'utf8')) as {
      images: Record<string, {pinned: string; platforms: string[]}>
    }
    expect(state.images.api.pinned).to.equal(pushed[1].pinned)
    expect(state.images.api.platforms).to.deep.equal(['linux/amd64', 'linux/arm64'])
  })

  it('bad input: --platform linux/s390x → exit 2 naming the platforms mlops builds for, nothing built', async () => {
    const run = await mlops('image', 'build', 'loader', '--platform', 'linux/s390x', '--tag', 's390x')
    expect(run.code).to.equal(ExitCode.USAGE)
    expect(run.stderr).to.contain('invalid --platform "linux/s390x": mlops images are built for linux/amd64 and linux/arm64')
    expect(await inEngine(ref('loader', 's390x'))).to.equal(false)
  })

  it('bad input: image.platforms: [windows/amd64] in mlops.yaml → exit 2 naming the key', async () => {
    const other = tempDir('mlops-mp-bad-')
    writeFileSync(join(other, 'mlops.yaml'), 'name: iris\nimage:\n  platforms: [windows/amd64]\n')
    const run = await runCli(['image', 'build'], env, other)
    expect(run.code).to.equal(ExitCode.USAGE)
    expect(run.stderr).to.match(/mlops\.yaml.*image\.platforms/)
  })

  it('bad input: an amd64 base image for linux/arm64 (--base-image linux/arm64=<the amd64 stand-in>) → exit 10 naming its platform, nothing tagged', async () => {
    const run = await mlops(
      'image',
      'build',
      'loader',
      '--platform',
      'linux/arm64',
      '--tag',
      'wrongbase',
      '--base-image',
      `linux/arm64=${bases.amd64}`,
    )
    expect(run.code).to.equal(ExitCode.BUILD_FAILED)
    expect(run.stderr).to.contain(`loader image for linux/arm64: its base image ${bases.amd64} is linux/amd64 in this engine`)
    expect(run.stderr).to.contain('--base-image linux/arm64=IMAGE')
    expect(await inEngine(ref('loader', 'wrongbase'))).to.equal(false)
  })

  it('bad input: push for both platforms after a build for one (tagged <tag> alone) → exit 3 naming the <tag>-amd64 image it needs, nothing pushed', async () => {
    const build = await mlops('image', 'build', 'loader', '--platform', 'linux/amd64', '--tag', 'onlyamd')
    expect(build.code, build.stderr).to.equal(0)
    const run = await mlops('image', 'push', 'loader', '--platform', 'linux/amd64,linux/arm64', '--tag', 'onlyamd')
    expect(run.code).to.equal(ExitCode.NOT_FOUND)
    expect(run.stderr).to.contain(`image ${ref('loader', 'onlyamd-amd64')} (linux/amd64) is not in the Docker engine`)
    expect((await registryGet('loader/manifests/onlyamd', 'application/vnd.docker.distribution.manifest.v2+json')).status).to.equal(404)
  })
})
