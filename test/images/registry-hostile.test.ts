import {expect} from 'chai'
import {once} from 'node:events'
import {type IncomingMessage, type Server, type ServerResponse, createServer} from 'node:http'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {runCli} from '../helpers/cli.js'
import {fixture, tempDir} from '../helpers/stores.js'

const PASSWORD = 'hostile-registry-secret-3'

type Handler = (request: IncomingMessage, response: ServerResponse) => void

/** An HTTP server on 127.0.0.1 whose answers the test chooses, and the requests it saw. */
async function stage(): Promise<{address: string; seen: IncomingMessage[]; answer: (handler: Handler) => void; close: () => void}> {
  const seen: IncomingMessage[] = []
  let handler: Handler = (_request, response) => response.writeHead(404).end()
  const server: Server = createServer((request, response) => {
    seen.push(request)
    handler(request, response)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const {port} = server.address() as {port: number}
  return {address: `127.0.0.1:${port}`, seen, answer: next => (handler = next), close: () => server.close()}
}

describe('mlops model publish against a hostile registry: credentials go nowhere else, bad answers are one line', function () {
  this.timeout(60_000)
  let project: string
  let env: Record<string, string>
  let registry: Awaited<ReturnType<typeof stage>>
  let realm: Awaited<ReturnType<typeof stage>>

  before(async () => {
    project = tempDir()
    env = {
      MLOPS_STORE: join(project, 'store'),
      MLOPS_REGISTRY_USERNAME: 'pub',
      MLOPS_REGISTRY_PASSWORD: PASSWORD,
      DOCKER_CONFIG: tempDir(),
      TMPDIR: tempDir(),
    }
    const pushed = await runCli(['model', 'push', fixture('iris_svc.onnx'), '--name', 'iris'], env, project)
    expect(pushed.code, pushed.stderr).to.equal(0)
    registry = await stage()
    realm = await stage()
    realm.answer((_request, response) => response.writeHead(200, {'content-type': 'application/json'}).end('{"token":"t0k3n"}'))
  })

  after(() => {
    registry?.close()
    realm?.close()
  })

  const challenge = (value: string) => registry.answer((_request, response) => response.writeHead(401, {'www-authenticate': value}).end())
  const publish = (extra: Record<string, string> = {}) =>
    runCli(['model', 'publish', 'iris@1', '--to', `${registry.address}/models/iris`], {...env, ...extra}, project)

  function oneLine(run: {stderr: string}): void {
    expect(
      run.stderr.split('\n').filter(line => line && !line.startsWith('Hint:')),
      run.stderr,
    ).to.have.length(1)
    expect(run.stderr).to.not.contain(PASSWORD).and.to.not.contain('Set MLOPS_DEBUG')
  }

  it('a bearer realm on another port of the same host (127.0.0.1:OTHER) → exit 6, the realm never asked, no credentials sent', async () => {
    challenge(`Bearer realm="http://${realm.address}/token",service="r",scope="repository:models/iris:pull,push"`)
    realm.seen.length = 0
    const run = await publish()
    expect(run.code, run.stderr).to.equal(ExitCode.PERMISSION)
    expect(run.stderr).to.contain(
      `Error: ${registry.address} asks for credentials at another host (${realm.address}); refusing to send them there`,
    )
    expect(run.stderr).to.contain(
      `Hint: if ${realm.address} is this registry's token service, set MLOPS_REGISTRY_TOKEN_REALMS=${realm.address}`,
    )
    expect(realm.seen, 'the other realm was asked').to.have.length(0)
    oneLine(run)
  })

  it('the same realm named in MLOPS_REGISTRY_TOKEN_REALMS is trusted: it is asked for the token, with the credentials', async () => {
    challenge(`Bearer realm="http://${realm.address}/token",service="r",scope="repository:models/iris:pull,push"`)
    realm.seen.length = 0
    await publish({MLOPS_REGISTRY_TOKEN_REALMS: realm.address})
    expect(realm.seen.length).to.be.greaterThan(0)
    expect(realm.seen[0].headers.authorization).to.equal(`Basic ${Buffer.from(`pub:${PASSWORD}`).toString('base64')}`)
    expect(new URL(realm.seen[0].url!, 'http://x').searchParams.get('scope')).to.equal('repository:models/iris:pull,push')
  })

  it('bad input: a plain-http realm off this machine (http://0.0.0.0:1), even one trusted by MLOPS_REGISTRY_TOKEN_REALMS → exit 6, no credentials sent', async () => {
    challenge('Bearer realm="http://0.0.0.0:1/token",service="r",scope="repository:models/iris:pull,push"')
    const run = await publish({MLOPS_REGISTRY_TOKEN_REALMS: '0.0.0.0:1'})
    expect(run.code, run.stderr).to.equal(ExitCode.PERMISSION)
    expect(run.stderr).to.contain(
      `Error: ${registry.address} asks for a token from http://0.0.0.0:1 over plain HTTP; refusing to send credentials there`,
    )
    oneLine(run)
  })

  it('a bearer challenge whose scope names another repository (repository:other/repo:push) → exit 6, no token asked', async () => {
    challenge(`Bearer realm="http://${registry.address}/token",service="r",scope="repository:other/repo:push"`)
    const run = await publish()
    expect(run.code, run.stderr).to.equal(ExitCode.PERMISSION)
    expect(run.stderr).to.contain(`asks for a token for other/repo, not models/iris; refusing to ask for it`)
    oneLine(run)
  })

  for (const bad of ['not a url', 'http://[::1', 'file:///etc/passwd'])
    it(`a bearer realm "${bad}" → exit 7, one line (was "Invalid URL", exit 1)`, async () => {
      challenge(`Bearer realm="${bad}",service="r"`)
      const run = await publish()
      expect(run.code, run.stderr).to.equal(ExitCode.UNAVAILABLE)
      expect(run.stderr).to.contain(`Error: ${registry.address} names a token service that is not an http(s) URL`)
      oneLine(run)
    })

  it('an upload Location that is not a URL (http://[) → exit 7, one line (was "Invalid URL", exit 1)', async () => {
    registry.answer((request, response) => {
      if (request.method === 'POST') return response.writeHead(202, {location: 'http://['}).end()
      response.writeHead(404).end()
    })
    const run = await publish()
    expect(run.code, run.stderr).to.equal(ExitCode.UNAVAILABLE)
    expect(run.stderr).to.contain(`Error: ${registry.address} started an upload at a Location that is not a URL`)
    oneLine(run)
  })

  it('--to u:SECRET@host/repo → exit 2 and the password is not echoed', async () => {
    const run = await runCli(['model', 'publish', 'iris@1', '--to', `u:${PASSWORD}@127.0.0.1:5000/models/iris`], env, project)
    expect(run.code, run.stderr).to.equal(ExitCode.USAGE)
    expect(run.stderr).to.not.contain(PASSWORD)
    oneLine(run)
  })
})
