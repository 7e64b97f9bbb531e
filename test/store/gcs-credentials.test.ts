import {expect} from 'chai'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import type {FakeGcs} from '../env/fake-gcs.js'
import {sharedGcs} from '../env/global.js'
import {type Run, runCli} from '../helpers/cli.js'
import {AuthProxy, type ServiceAccountKey, TokenEndpoint, writeServiceAccountKey} from '../helpers/gcs-auth.js'
import {fixture, randomBytes, tempDir} from '../helpers/stores.js'

/*
 * The CLI with a real service-account key: the auth library signs a
 * JWT-bearer grant with the key, a token endpoint on 127.0.0.1 verifies it
 * with the key's public half and hands out an access token, and a proxy in
 * front of the emulator refuses every storage request without that token.
 */
describe('GCS credentials: a service-account key, its token endpoint and a token-checking storage proxy', function () {
  this.timeout(120_000)
  let gcs: FakeGcs
  let token: TokenEndpoint
  let proxy: AuthProxy
  let key: ServiceAccountKey

  before(async () => {
    gcs = await sharedGcs()
    token = await TokenEndpoint.start()
    key = writeServiceAccountKey(token.tokenUri)
    token.register(key)
    proxy = await AuthProxy.start(gcs.url, token.accessToken)
  })

  after(async () => {
    await proxy?.stop()
    await token?.stop()
  })

  beforeEach(() => {
    token.reset()
    proxy.reset()
  })

  /** A fresh bucket holding iris@1, pushed straight to the emulator (no credentials involved). */
  async function bucketWithModel(): Promise<string> {
    const bucket = `auth-${randomBytes(4).toString('hex')}`
    await gcs.createBucket(bucket)
    const push = await runCli(['model', 'push', fixture('iris_svc.onnx'), '--name', 'iris'], {
      MLOPS_STORE: `gs://${bucket}`,
      MLOPS_GCS_ENDPOINT: gcs.url,
      MLOPS_GCS_ANONYMOUS: 'true',
    })
    expect(push.code, push.stderr).to.equal(0)
    return bucket
  }

  /** The CLI sending credentials from `keyFile` to the proxy (MLOPS_GCS_ANONYMOUS=false: the endpoint is plain http). */
  function withKey(bucket: string, keyFile = key.path, more: Record<string, string> = {}): Record<string, string> {
    return {
      MLOPS_STORE: `gs://${bucket}`,
      MLOPS_GCS_ENDPOINT: proxy.url,
      MLOPS_GCS_ANONYMOUS: 'false',
      GOOGLE_APPLICATION_CREDENTIALS: keyFile,
      MLOPS_STORE_TIMEOUT: '5',
      ...token.env(),
      ...more,
    }
  }

  const pullArgs = () => ['model', 'pull', 'iris@1', '--to', join(tempDir(), 'model.onnx')]
  const push = ['model', 'push', fixture('iris_svc.onnx'), '--name', 'iris']

  /** One `Error:` line (and maybe a `Hint:` line) on stderr, nothing on stdout, no stack trace, no credential. */
  function expectCleanFailure(run: Run, code: number, message: RegExp): void {
    expect(run.code, run.stderr).to.equal(code)
    const lines = run.stderr.split('\n').filter(Boolean)
    expect(lines[0]).to.match(message)
    expect(
      lines.slice(1).every(line => line.startsWith('Hint: ')),
      run.stderr,
    ).to.equal(true)
    expect(lines.length).to.be.at.most(2)
    expect(run.stdout).to.equal('')
    expectNoCredentials(run)
  }

  /** Neither the private key (any line of its PEM body) nor the access token, anywhere. */
  function expectNoCredentials(run: Run, extra: string[] = []): void {
    const everything = run.stdout + run.stderr
    const pemLines = key.privateKey.split('\n').filter(line => line && !line.startsWith('-----'))
    for (const secret of [token.accessToken, ...pemLines, ...extra]) expect(everything).to.not.contain(secret)
  }

  it('a valid key, MLOPS_GCS_ANONYMOUS=false, plain-http endpoint: push, list and pull work, and every storage request carried the granted bearer token', async () => {
    const bucket = `auth-${randomBytes(4).toString('hex')}`
    await gcs.createBucket(bucket)
    const env = withKey(bucket)
    const pushed = await runCli(push, env)
    expect(pushed.code, pushed.stderr).to.equal(0)
    const list = await runCli(['model', 'list', '--json'], env)
    expect(list.code, list.stderr).to.equal(0)
    expect(JSON.parse(list.stdout).models.map((m: {name: string}) => m.name)).to.deep.equal(['iris'])
    const to = join(tempDir(), 'model.onnx')
    const pull = await runCli(['model', 'pull', 'iris@1', '--to', to], env)
    expect(pull.code, pull.stderr).to.equal(0)
    expect(readFileSync(to).equals(readFileSync(fixture('iris_svc.onnx')))).to.equal(true)

    // The client's calls and our own bulk paths (multipart upload, ranged alt=media reads) alike.
    expect(proxy.requests.some(r => r.method === 'POST' && r.path.startsWith('/upload/storage/v1/'))).to.equal(true)
    expect(proxy.requests.some(r => r.method === 'GET' && r.path.includes('alt=media'))).to.equal(true)
    expect(proxy.requests.filter(r => r.authorization !== `Bearer ${token.accessToken}`)).to.deep.equal([])
    // One signed grant per process, for this key's account, with the storage scope; nothing dialled but Google's token host.
    expect(token.grants).to.have.length(3)
    for (const grant of token.grants) {
      expect(grant).to.include({iss: key.clientEmail, signatureValid: true})
      expect(grant.scope).to.contain('https://www.googleapis.com/auth/devstorage.full_control')
    }

    expect(new Set(token.connects)).to.deep.equal(new Set(['www.googleapis.com:443']))
    for (const run of [pushed, list, pull]) expectNoCredentials(run)
  })

  it('no MLOPS_GCS_ANONYMOUS with a plain-http endpoint, or --anonymous over MLOPS_GCS_ANONYMOUS=false: no token is requested or sent (emulators need no key)', async () => {
    const bucket = await bucketWithModel()
    const {MLOPS_GCS_ANONYMOUS: _, ...unset} = withKey(bucket)
    for (const [args, env] of [
      [['model', 'list'], unset],
      [['model', 'list', '--anonymous'], withKey(bucket)],
    ] as const) {
      const run = await runCli([...args], env)
      expectCleanFailure(run, ExitCode.PERMISSION, /^Error: gs:\/\/auth-\w+: permission denied \(Invalid Credentials\)$/)
    }

    expect(proxy.requests.length).to.be.greaterThan(0)
    expect(proxy.requests.filter(r => r.authorization !== undefined)).to.deep.equal([])
    expect(token.grants).to.deep.equal([])
  })

  it("the token endpoint answers 400 invalid_grant: push, list and the loader's pull exit 6 in one line, no key or token in any output or the termination log", async () => {
    const bucket = await bucketWithModel()
    token.mode = 'invalid_grant'
    const summary = join(tempDir(), 'termination-log')
    for (const args of [push, ['model', 'list'], [...pullArgs(), '--termination-log', summary]]) {
      const run = await runCli(args, withKey(bucket))
      expectCleanFailure(
        run,
        ExitCode.PERMISSION,
        /^Error: GOOGLE_APPLICATION_CREDENTIALS \(.+key\.json\) was refused by the token endpoint \(invalid_grant\)$/,
      )
    }

    const log = readFileSync(summary, 'utf8')
    expect(log).to.contain('invalid_grant')
    expectNoCredentials({code: 0, stdout: log, stderr: ''})
    expect(token.grants.length).to.be.greaterThan(0)
    expect(proxy.requests).to.deep.equal([])
  })

  it('a key the token endpoint does not know (same account, another private key: a rotated key): its signature is refused, exit 6', async () => {
    const bucket = await bucketWithModel()
    const rotated = writeServiceAccountKey(token.tokenUri, {clientEmail: key.clientEmail})
    const run = await runCli(['model', 'list'], withKey(bucket, rotated.path))
    expectCleanFailure(run, ExitCode.PERMISSION, /was refused by the token endpoint \(invalid_grant\)$/)
    expectNoCredentials(
      run,
      rotated.privateKey.split('\n').filter(line => line && !line.startsWith('-----')),
    )
    expect(token.grants).to.have.length.greaterThan(0)
    expect(token.grants.every(grant => grant.iss === key.clientEmail && !grant.signatureValid)).to.equal(true)
  })

  it('a token the token endpoint grants but storage refuses (HTTP 401): push, list and pull exit 6', async () => {
    const bucket = await bucketWithModel()
    const other = await AuthProxy.start(gcs.url, 'ya29.another-token')
    try {
      for (const args of [push, ['model', 'list'], pullArgs()]) {
        const run = await runCli(args, withKey(bucket, key.path, {MLOPS_GCS_ENDPOINT: other.url}))
        expectCleanFailure(run, ExitCode.PERMISSION, /^Error: gs:\/\/auth-\w+: permission denied \(Invalid Credentials\)$/)
      }

      expect(other.requests.length).to.be.greaterThan(0)
      expect(other.requests.every(r => r.authorization === `Bearer ${token.accessToken}`)).to.equal(true)
    } finally {
      await other.stop()
    }
  })

  it('a valid token for an account without a role on the bucket (HTTP 403): push, list and pull exit 6 naming the bucket', async () => {
    const bucket = await bucketWithModel()
    proxy.mode = 'forbidden'
    for (const args of [push, ['model', 'list'], pullArgs()]) {
      const run = await runCli(args, withKey(bucket))
      expectCleanFailure(
        run,
        ExitCode.PERMISSION,
        new RegExp(`^Error: gs://${bucket}: permission denied \\(.*does not have storage\\.objects\\.list access`),
      )
    }
  })

  describe('GOOGLE_APPLICATION_CREDENTIALS naming something that is not a key: exit 2 or 6 in one line, none of its content echoed, no token requested', () => {
    // Short: the JSON parser quotes only a file's first ten characters.
    const marker = 'K3yM4t'
    const email = 'model-loader@mlops-test.iam.gserviceaccount.com'
    const notKeys: Array<[string, string, number, RegExp]> = [
      [
        'not JSON: a PEM key on its own',
        `-----BEGIN PRIVATE KEY-----\n${marker}\n-----END PRIVATE KEY-----\n`,
        ExitCode.USAGE,
        /is not a JSON key file$/,
      ],
      ['not JSON: a bare base64 key', `${marker}MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n`, ExitCode.USAGE, /is not a JSON key file$/],
      ['an empty file', '', ExitCode.USAGE, /is not a JSON key file$/],
      [
        'JSON without private_key',
        JSON.stringify({type: 'service_account', client_email: email, private_key_id: marker, token_uri: 'http://127.0.0.1:1/token'}),
        ExitCode.USAGE,
        /is not a usable service-account key$/,
      ],
      [
        'JSON without client_email',
        JSON.stringify({type: 'service_account', private_key: `-----BEGIN PRIVATE KEY-----\n${marker}\n-----END PRIVATE KEY-----\n`}),
        ExitCode.USAGE,
        /is not a usable service-account key$/,
      ],
      [
        'a private_key that is not PEM',
        JSON.stringify({
          type: 'service_account',
          client_email: email,
          private_key: `MIIEvQIBADANBgkqhkiG9w0BAQEFAASC${marker}`,
          token_uri: 'http://127.0.0.1:1/token',
        }),
        ExitCode.USAGE,
        /is not a usable service-account key$/,
      ],
      ['a JSON array', `["${marker}"]`, ExitCode.USAGE, /is not a usable service-account key$/],
    ]
    for (const [what, content, code, message] of notKeys) {
      it(`${what}: model list and the loader's pull`, async () => {
        const bucket = await bucketWithModel()
        const file = join(tempDir(), 'key.json')
        writeFileSync(file, content)
        for (const args of [['model', 'list'], pullArgs()]) {
          const run = await runCli(args, withKey(bucket, file))
          expectCleanFailure(run, code, new RegExp(`^Error: GOOGLE_APPLICATION_CREDENTIALS \\(${file}\\) ${message.source}`))
          expectNoCredentials(run, [marker])
        }

        expect(token.grants).to.deep.equal([])
        expect(proxy.requests).to.deep.equal([])
      })
    }

    it("a path that does not exist: exit 6 naming the variable and the path (model list and the loader's pull)", async () => {
      const bucket = await bucketWithModel()
      const missing = join(tempDir(), 'no-such-key.json')
      for (const args of [['model', 'list'], pullArgs()]) {
        const run = await runCli(args, withKey(bucket, missing))
        expectCleanFailure(run, ExitCode.PERMISSION, new RegExp(`^Error: GOOGLE_APPLICATION_CREDENTIALS \\(${missing}\\) does not exist$`))
      }
    })

    it('a folder: exit 2 naming the variable and the path', async () => {
      const bucket = await bucketWithModel()
      const folder = tempDir()
      const run = await runCli(['model', 'list'], withKey(bucket, folder))
      expectCleanFailure(run, ExitCode.USAGE, new RegExp(`^Error: GOOGLE_APPLICATION_CREDENTIALS \\(${folder}\\) is not a file$`))
    })
  })
})
