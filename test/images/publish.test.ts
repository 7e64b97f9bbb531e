import {expect} from 'chai'
import {createHash} from 'node:crypto'
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {localRegistry} from '../env/docker.js'
import {runCli} from '../helpers/cli.js'
import {fixture, tempDir} from '../helpers/stores.js'

const PASSWORD = 'publish-secret-7'

/** Entries of an uncompressed tar: name → bytes. */
function untar(data: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>()
  for (let offset = 0; offset + 512 <= data.length;) {
    const header = data.subarray(offset, offset + 512)
    if (header.every(byte => byte === 0)) break
    const name = header.subarray(0, 100).toString('ascii').replace(/\0.*$/s, '')
    const size = Number.parseInt(header.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim(), 8)
    files.set(name, data.subarray(offset + 512, offset + 512 + size))
    offset += 512 + Math.ceil(size / 512) * 512
  }

  return files
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

describe('mlops model publish: a model version as an OCI image, pushed without a Docker engine', function () {
  this.timeout(120_000)
  let registry: {address: string; stop: () => void}
  let project: string
  let env: Record<string, string>
  const mlops = (...args: string[]) => runCli(args, env, project)
  const json = async (...args: string[]) => {
    const result = await mlops(...args, '--json')
    expect(result.code, result.stderr).to.equal(0)
    return JSON.parse(result.stdout)
  }

  /** GET from the registry with its basic-auth credentials. */
  const registryGet = async (path: string, accept?: string) => {
    const response = await fetch(`http://${registry.address}/v2/${path}`, {
      headers: {authorization: `Basic ${Buffer.from(`pub:${PASSWORD}`).toString('base64')}`, ...(accept ? {accept} : {})},
    })
    expect(response.status, path).to.equal(200)
    return Buffer.from(await response.arrayBuffer())
  }

  before(async () => {
    registry = localRegistry('pub', PASSWORD)
    project = tempDir()
    env = {
      MLOPS_STORE: join(project, 'store'),
      MLOPS_REGISTRY_USERNAME: 'pub',
      MLOPS_REGISTRY_PASSWORD: PASSWORD,
      DOCKER_CONFIG: tempDir(),
      TMPDIR: tempDir(),
    }
    const pushed = await mlops('model', 'push', fixture('iris_svc.onnx'), '--name', 'iris', '--labels', fixture('iris_labels.json'))
    expect(pushed.code, pushed.stderr).to.equal(0)
  })

  after(() => registry?.stop())

  it("pushes model.onnx, labels.json and the store's manifest.json as one layer of an image whose config names it (rootfs.diff_ids); the same version gives the same digest", async () => {
    const first = await json('model', 'publish', 'iris@1', '--to', `${registry.address}/models/iris`)
    expect(first).to.include({model: 'iris@1', repository: `${registry.address}/models/iris`, tag: '1'})
    expect(first.digest).to.match(/^sha256:[0-9a-f]{64}$/)
    expect(first.layer.uploaded).to.equal(true)
    const again = await json('model', 'publish', 'iris@1', '--to', `${registry.address}/models/iris`)
    expect(again.digest).to.equal(first.digest)
    expect(again.layer.uploaded).to.equal(false)

    const manifestData = await registryGet(`models/iris/manifests/${first.digest}`, 'application/vnd.oci.image.manifest.v1+json')
    expect(`sha256:${sha256(manifestData)}`).to.equal(first.digest)
    const manifest = JSON.parse(manifestData.toString('utf8'))
    expect(manifest.mediaType).to.equal('application/vnd.oci.image.manifest.v1+json')
    expect(manifest.config.mediaType).to.equal('application/vnd.oci.image.config.v1+json')
    expect(manifest.layers).to.have.length(1)
    expect(manifest.layers[0]).to.include({mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: first.layer.digest})
    expect(manifest.annotations).to.include({
      'org.opencontainers.image.title': 'iris',
      'org.opencontainers.image.version': '1',
      'org.cncf.model.name': 'iris',
      'io.mlops.model.onnx.ir-version': '8',
    })
    const config = JSON.parse((await registryGet(`models/iris/blobs/${manifest.config.digest}`)).toString('utf8'))
    expect(config.rootfs).to.deep.equal({type: 'layers', diff_ids: [first.layer.digest]})
    expect(config.os).to.equal('linux')

    const layer = await registryGet(`models/iris/blobs/${first.layer.digest}`)
    expect(`sha256:${sha256(layer)}`).to.equal(first.layer.digest)
    const files = untar(layer)
    expect([...files.keys()]).to.deep.equal(['model.onnx', 'labels.json', 'manifest.json'])
    expect(files.get('model.onnx')!.equals(readFileSync(fixture('iris_svc.onnx')))).to.equal(true)
    expect(files.get('labels.json')!.equals(readFileSync(join(project, 'store', 'iris', '1', 'labels.json')))).to.equal(true)
    expect(files.get('manifest.json')!.equals(readFileSync(join(project, 'store', 'iris', '1', 'manifest.json')))).to.equal(true)
    expect(manifest.annotations['io.mlops.model.sha256']).to.equal(sha256(files.get('model.onnx')!))
  })

  it('records the digest in the store: model show lists it (text and --json); the record is beside the version', async () => {
    const {digest} = await json('model', 'publish', 'iris@1', '--to', `${registry.address}/models/iris`)
    const show = await json('model', 'show', 'iris@1')
    expect(show.images).to.have.length(1)
    expect(show.images[0]).to.include({repository: `${registry.address}/models/iris`, tag: '1', digest})
    expect((await mlops('model', 'show', 'iris@1')).stdout).to.contain(`  image      ${registry.address}/models/iris:1@${digest}`)
    expect(existsSync(join(project, 'store', 'iris', '1', 'images.json'))).to.equal(true)
  })

  it('a version with a reference set: the layer carries reference.json (the stored bytes), and the record names its sha256', async () => {
    const pushed = await mlops(
      'model',
      'push',
      fixture('iris_svc.onnx'),
      '--name',
      'iris',
      '--labels',
      fixture('iris_labels.json'),
      '--reference',
      fixture('iris_reference.csv'),
    )
    expect(pushed.code, pushed.stderr).to.equal(0)
    const published = await json('model', 'publish', 'iris@2', '--to', `${registry.address}/models/iris`)
    const layer = untar(await registryGet(`models/iris/blobs/${published.layer.digest}`))
    expect([...layer.keys()]).to.deep.equal(['model.onnx', 'labels.json', 'reference.json', 'manifest.json'])
    const stored = readFileSync(join(project, 'store', 'iris', '2', 'reference.json'))
    expect(layer.get('reference.json')!.equals(stored)).to.equal(true)
    const show = await json('model', 'show', 'iris@2')
    expect(show.images[0]).to.include({digest: published.digest, reference: JSON.parse(stored.toString('utf8')).sha256})
    expect(show.images[0].reference).to.equal(show.reference.sha256)
  })

  it('a hostile publications record (a repository with a space, a digest that is not sha256) is reported by model show, never printed as an image', async () => {
    const record = join(project, 'store', 'iris', '1', 'images.json')
    const good = readFileSync(record)
    try {
      writeFileSync(record, JSON.stringify({images: [{repository: 'evil repo/$(id)', digest: 'sha256:zz', tag: '1', publishedAt: ''}]}))
      const show = await mlops('model', 'show', 'iris@1', '--json')
      expect(show.code, show.stderr).to.equal(0)
      const parsed = JSON.parse(show.stdout)
      expect(parsed.images).to.deep.equal([])
      expect(parsed.imagesProblem).to.match(/published images record .* is corrupt: images\[0\]\.repository is not REGISTRY\/REPOSITORY/)
      expect(show.stdout).to.not.contain('$(id)')
    } finally {
      writeFileSync(record, good)
    }
  })

  it('a publish killed before it finished leaves a temporary folder that the next publish removes', async () => {
    const leftover = join(env.TMPDIR, 'mlops-publish-2147483646-abc123')
    mkdirSync(leftover)
    writeFileSync(join(leftover, 'layer.tar'), 'partial')
    await json('model', 'publish', 'iris@1', '--to', `${registry.address}/models/iris`)
    expect(existsSync(leftover)).to.equal(false)
  })

  for (const [name, args, extraEnv, code, message] of [
    ['--to without a registry (team/iris)', ['--to', 'team/iris'], {}, ExitCode.USAGE, /does not name a registry/],
    ['--to in upper case', ['--to', '127.0.0.1:5000/Team/Iris'], {}, ExitCode.USAGE, /is not a repository/],
    ['--to with a tag', ['--to', '127.0.0.1:5000/team/iris:1'], {}, ExitCode.USAGE, /is not a repository/],
    ['--tag starting with "-"', ['--to', '127.0.0.1:5000/team/iris', '--tag=-x'], {}, ExitCode.USAGE, /is not an image tag/],
    ['no --to and no image.repository with a registry', [], {}, ExitCode.USAGE, /no registry to publish to/],
    ['a wrong password', ['--to', 'REGISTRY/models/iris'], {MLOPS_REGISTRY_PASSWORD: 'wrong-password-9'}, ExitCode.PERMISSION, /refused/],
    ['an unreachable registry', ['--to', '127.0.0.1:1/models/iris'], {}, ExitCode.UNAVAILABLE, /cannot reach 127\.0\.0\.1:1/],
  ] as const) {
    it(`bad input: ${name} → exit ${code}, one line, nothing recorded`, async () => {
      const before = readFileSync(join(project, 'store', 'iris', '1', 'images.json'), 'utf8')
      const result = await runCli(
        ['model', 'publish', 'iris@1', ...args.map(arg => arg.replace('REGISTRY', registry.address))],
        {...env, ...extraEnv},
        project,
      )
      expect(result.code, result.stderr).to.equal(code)
      expect(result.stderr).to.match(message)
      expect(
        result.stderr
          .trim()
          .split('\n')
          .filter(line => !line.startsWith('Hint:')),
      ).to.have.length(1)
      expect(result.stderr).to.not.contain('wrong-password-9').and.to.not.contain(PASSWORD)
      expect(readFileSync(join(project, 'store', 'iris', '1', 'images.json'), 'utf8')).to.equal(before)
    })
  }

  it('bad input: a model that is not in the store → exit 3', async () => {
    const result = await mlops('model', 'publish', 'irsi@1', '--to', `${registry.address}/models/iris`)
    expect(result.code).to.equal(ExitCode.NOT_FOUND)
    expect(result.stderr).to.match(/model "irsi" not found/)
  })
})
