import {expect} from 'chai'
import Docker from 'dockerode'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {dockerEngine, tokenRegistry} from '../env/docker.js'
import {runCli} from '../helpers/cli.js'
import {type TokenRequest, startTokenServer} from '../helpers/token-server.js'
import {fixture, tempDir} from '../helpers/stores.js'

const PASSWORD = 'bearer-secret-31'

/**
 * A registry that authenticates as Docker Hub, GCR and Artifact Registry do: bearer tokens from a
 * token service named in its 401 challenge (distribution 2.8 with `auth: token`, and a token
 * server of the test's). `model publish` runs the token flow itself; `image push` hands the
 * credentials to the Docker engine, which does.
 */
describe('a bearer-token registry (token server + registry on 127.0.0.1): publish and push', function () {
  this.timeout(180_000)
  let tokens: Awaited<ReturnType<typeof startTokenServer>>
  let registry: {address: string; stop: () => void}
  let project: string
  let realmHost = ''
  const env = (extra: Record<string, string> = {}) => ({
    MLOPS_STORE: join(project, 'store'),
    MLOPS_REGISTRY_USERNAME: 'ci-bearer',
    MLOPS_REGISTRY_PASSWORD: PASSWORD,
    MLOPS_REGISTRY_TOKEN_REALMS: realmHost,
    DOCKER_CONFIG: tempDir(),
    ...extra,
  })
  const mlops = async (args: string[], extra?: Record<string, string>) => runCli(args, env(extra), project)
  const asked = (from: number) => tokens.requests.slice(from)
  const credentialed = (requests: TokenRequest[]) => requests.filter(request => request.user !== undefined)

  before(async () => {
    tokens = await startTokenServer('ci-bearer', PASSWORD)
    realmHost = new URL(tokens.realm).host
    registry = tokenRegistry(tokens.realm, tokens.certificate)
    project = tempDir()
    writeFileSync(join(project, 'mlops.yaml'), `name: iris\nimage:\n  repository: ${registry.address}/team\n  tag: v1\n`)
    const pushed = await mlops(['model', 'push', fixture('iris_svc.onnx'), '--name', 'iris', '--labels', fixture('iris_labels.json')])
    expect(pushed.code, pushed.stderr).to.equal(0)
  })

  after(async () => {
    registry?.stop()
    await tokens?.stop()
  })

  it('the registry answers 401 with a Bearer challenge naming the token server (auth is really on)', async () => {
    const response = await fetch(`http://${registry.address}/v2/`)
    expect(response.status).to.equal(401)
    expect(response.headers.get('www-authenticate')).to.equal(`Bearer realm="${tokens.realm}",service="mlops-test-registry"`)
  })

  it('model publish: tokens for this repository only, each for the scope its challenge named (pull, then pull,push), then the image is in the registry, pinned by digest', async () => {
    const from = tokens.requests.length
    const published = await mlops(['model', 'publish', 'iris@1', '--to', `${registry.address}/team/iris-model`, '--json'])
    expect(published.code, published.stderr).to.equal(0)
    const {digest} = JSON.parse(published.stdout) as {digest: string}
    expect(digest).to.match(/^sha256:[0-9a-f]{64}$/)
    const granted = asked(from).filter(request => request.granted)
    expect(granted.length).to.be.greaterThan(0)
    // Only this repository, as each challenge named it: pull for the first look, pull,push for the upload
    // (with one token for every request, as before this test, the upload was refused: exit 6).
    for (const request of granted) {
      expect(request).to.include({user: 'ci-bearer', service: 'mlops-test-registry'})
      expect(request.scope).to.match(/^repository:team\/iris-model:(pull|pull,push|push,pull)$/)
    }

    expect(granted.some(request => request.scope.includes('push'))).to.equal(true)

    // Read back with a token of its own: the manifest the registry holds has the digest publish recorded.
    const token = await (
      await fetch(`${tokens.realm}?service=mlops-test-registry&scope=repository:team/iris-model:pull`, {
        headers: {authorization: `Basic ${Buffer.from(`ci-bearer:${PASSWORD}`).toString('base64')}`},
      })
    ).json()
    const manifest = await fetch(`http://${registry.address}/v2/team/iris-model/manifests/${digest}`, {
      method: 'HEAD',
      headers: {authorization: `Bearer ${(token as {token: string}).token}`, accept: 'application/vnd.oci.image.manifest.v1+json'},
    })
    expect(manifest.status).to.equal(200)
    expect(manifest.headers.get('docker-content-digest')).to.equal(digest)
    const shown = await mlops(['model', 'show', 'iris@1', '--json'])
    expect(JSON.stringify(JSON.parse(shown.stdout))).to.contain(digest)
  })

  it('bad input: model publish with a password the token server refuses → exit 6 naming the registry, the password never printed', async () => {
    const published = await mlops(['model', 'publish', 'iris@1', '--to', `${registry.address}/team/iris-model`], {
      MLOPS_REGISTRY_PASSWORD: 'not-the-bearer-pass',
    })
    expect(published.code, published.stderr).to.equal(ExitCode.PERMISSION)
    expect(published.stderr).to.match(/^Error: .*127\.0\.0\.1:\d+/)
    expect(published.stdout + published.stderr).to.not.contain('not-the-bearer-pass')
  })

  it('bad input: the token server not trusted (no MLOPS_REGISTRY_TOKEN_REALMS; another port of 127.0.0.1) → exit 6 naming it, no credentials sent to it', async () => {
    const from = tokens.requests.length
    const published = await mlops(['model', 'publish', 'iris@1', '--to', `${registry.address}/team/iris-model`], {
      MLOPS_REGISTRY_TOKEN_REALMS: '',
    })
    expect(published.code, published.stderr).to.equal(ExitCode.PERMISSION)
    expect(published.stderr).to.contain(realmHost)
    expect(published.stderr).to.contain('MLOPS_REGISTRY_TOKEN_REALMS')
    expect(credentialed(asked(from))).to.deep.equal([])
  })

  describe('image push through the Docker engine', () => {
    let docker: Docker

    before(async () => {
      process.env.DOCKER_HOST = dockerEngine().dockerHost
      docker = new Docker()
      // Any local image serves as the two components: the push, not the build, is under test here.
      const base = dockerEngine().baseImage
      const [repo, tag] = [base.slice(0, base.lastIndexOf(':')), base.slice(base.lastIndexOf(':') + 1)]
      expect(repo && tag, base).to.be.ok
      for (const component of ['loader', 'api']) await docker.getImage(base).tag({repo: `${registry.address}/team/${component}`, tag: 'v1'})
    })

    it('pushes both images with MLOPS_REGISTRY_USERNAME/PASSWORD: the engine gets tokens for each repository and the digests are recorded', async () => {
      const from = tokens.requests.length
      const pushed = await mlops(['image', 'push', '--json'])
      expect(pushed.code, pushed.stderr).to.equal(0)
      const state = JSON.parse(readFileSync(join(project, '.mlops', 'state.json'), 'utf8')) as {
        images: Record<string, {digest: string; pinned: string}>
      }
      for (const component of ['loader', 'api']) {
        expect(state.images[component].pinned).to.equal(`${registry.address}/team/${component}@${state.images[component].digest}`)
        expect(asked(from).some(request => request.granted && request.scope.startsWith(`repository:team/${component}:`))).to.equal(true)
      }
    })

    it('bad input: image push with a refused password → exit 6, the password never printed', async () => {
      const pushed = await mlops(['image', 'push', 'api'], {MLOPS_REGISTRY_PASSWORD: 'wrong-bearer-pass'})
      expect(pushed.code, pushed.stderr).to.equal(ExitCode.PERMISSION)
      expect(pushed.stderr).to.match(/^Error: 127\.0\.0\.1:\d+ refused the push/)
      expect(pushed.stdout + pushed.stderr).to.not.contain('wrong-bearer-pass')
    })
  })
})
