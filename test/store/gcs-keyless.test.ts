import {expect} from 'chai'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import type {FakeGcs} from '../env/fake-gcs.js'
import {sharedGcs} from '../env/global.js'
import {type Run, runCli} from '../helpers/cli.js'
import {AuthProxy} from '../helpers/gcs-auth.js'
import {MetadataServer, StsEndpoint} from '../helpers/keyless-auth.js'
import {fixture, randomBytes, tempDir} from '../helpers/stores.js'

/*
 * Credentials where they are really used, with no key file: a pod's metadata server (Workload
 * Identity on GKE) and a CI job's Workload Identity Federation (an external_account file whose
 * OIDC token an STS endpoint exchanges). The CLI and the loader (`model pull`) go through the
 * token-checking proxy in front of the emulator, which lets through only the token handed out.
 */
describe('GCS credentials with no key file: a metadata server (pods) and Workload Identity Federation (CI)', function () {
  this.timeout(120_000)
  const accessToken = `ya29.keyless-${randomBytes(18).toString('hex')}`
  let gcs: FakeGcs
  let proxy: AuthProxy
  let metadata: MetadataServer
  let sts: StsEndpoint
  let bucket: string

  before(async () => {
    gcs = await sharedGcs()
    proxy = await AuthProxy.start(gcs.url, accessToken)
    metadata = await MetadataServer.start(accessToken)
    sts = await StsEndpoint.start(accessToken)
    bucket = `keyless-${randomBytes(4).toString('hex')}`
    await gcs.createBucket(bucket)
    const pushed = await runCli(['model', 'push', fixture('iris_svc.onnx'), '--name', 'iris'], {
      MLOPS_STORE: `gs://${bucket}`,
      MLOPS_GCS_ENDPOINT: gcs.url,
      MLOPS_GCS_ANONYMOUS: 'true',
    })
    expect(pushed.code, pushed.stderr).to.equal(0)
  })

  after(async () => {
    await proxy?.stop()
    await metadata?.stop()
    await sts?.stop()
  })

  beforeEach(() => {
    proxy.reset()
    metadata.reset()
    sts.reset()
  })

  /** Through the proxy with credentials on, and no key file or gcloud login to fall back on (HOME is empty). */
  const store = (more: Record<string, string>) => ({
    MLOPS_STORE: `gs://${bucket}`,
    MLOPS_GCS_ENDPOINT: proxy.url,
    MLOPS_GCS_ANONYMOUS: 'false',
    MLOPS_STORE_TIMEOUT: '5',
    GOOGLE_APPLICATION_CREDENTIALS: '',
    HOME: tempDir(),
    ...more,
  })
  const pull = async (env: Record<string, string>) => runCli(['model', 'pull', 'iris@1', '--to', join(tempDir(), 'model.onnx')], env)
  const authorized = () => proxy.requests.filter(request => request.authorization === `Bearer ${accessToken}`)
  const noSecrets = (run: Run, ...secrets: string[]) => {
    for (const secret of secrets) expect(run.stdout + run.stderr).to.not.contain(secret)
  }

  describe('the metadata server (GCE_METADATA_HOST, as Workload Identity serves it in a pod)', () => {
    const env = () => store({GCE_METADATA_HOST: metadata.host, METADATA_SERVER_DETECTION: 'ping-only'})

    it('model list and the loader (model pull) get their token from it, with Metadata-Flavor: Google, and the storage requests carry it', async () => {
      const listed = await runCli(['model', 'list'], env())
      expect(listed.code, listed.stderr).to.equal(0)
      expect(listed.stdout).to.contain('iris')
      const pulled = await pull(env())
      expect(pulled.code, pulled.stderr).to.equal(0)
      expect(metadata.tokenRequests().length).to.be.greaterThan(0)
      expect(metadata.tokenRequests().every(seen => seen.flavor === 'Google')).to.equal(true)
      expect(authorized().length).to.be.greaterThan(0)
      noSecrets(listed, accessToken)
      noSecrets(pulled, accessToken)
    })

    it('bad input: the metadata server refuses the token (no service account bound) → exit 6, one line, no token printed', async () => {
      metadata.mode = 'refuse'
      const pulled = await pull(env())
      expect(pulled.code, pulled.stderr).to.equal(ExitCode.PERMISSION)
      expect(pulled.stderr.split('\n').filter(line => line && !line.startsWith('{') && !line.startsWith('Hint:'))).to.have.length(1)
      noSecrets(pulled, accessToken)
      expect(authorized()).to.deep.equal([])
    })
  })

  describe('Workload Identity Federation (an external_account file, a CI OIDC token exchanged at STS)', () => {
    it('model list and the loader exchange the OIDC token at the STS endpoint and use what it answers', async () => {
      const env = store({GOOGLE_APPLICATION_CREDENTIALS: sts.writeCredentials()})
      const listed = await runCli(['model', 'list'], env)
      expect(listed.code, listed.stderr).to.equal(0)
      const pulled = await pull(env)
      expect(pulled.code, pulled.stderr).to.equal(0)
      const exchanges = sts.seen.filter(seen => seen.body?.get('subject_token') === sts.subjectToken)
      expect(exchanges.length).to.be.greaterThan(0)
      expect(exchanges[0].body?.get('subject_token_type')).to.equal('urn:ietf:params:oauth:token-type:jwt')
      expect(authorized().length).to.be.greaterThan(0)
      noSecrets(listed, accessToken, sts.subjectToken)
      noSecrets(pulled, accessToken, sts.subjectToken)
    })

    it('bad input: STS refuses the exchange (invalid_grant) → exit 6, one line, neither the OIDC token nor any access token printed', async () => {
      sts.mode = 'refuse'
      const listed = await runCli(['model', 'list'], store({GOOGLE_APPLICATION_CREDENTIALS: sts.writeCredentials()}))
      expect(listed.code, listed.stderr).to.equal(ExitCode.PERMISSION)
      expect(listed.stderr).to.match(
        /^Error: GOOGLE_APPLICATION_CREDENTIALS \(.*external-account\.json\) was refused by the token endpoint \(invalid_grant\)\n/,
      )
      expect(listed.stderr).to.contain("Hint: Workload Identity Federation refused the exchange: check the provider's audience")
      noSecrets(listed, accessToken, sts.subjectToken)
      expect(authorized()).to.deep.equal([])
    })
  })
})
