import {randomBytes} from 'node:crypto'
import {writeFileSync} from 'node:fs'
import {type IncomingMessage, type Server, createServer} from 'node:http'
import {join} from 'node:path'

import {tempDir} from './stores.js'

/*
 * Google credentials without a key file, as CI and pods get them, on 127.0.0.1:
 * - a GKE/GCE metadata server (Workload Identity in a pod): GCE_METADATA_HOST points the auth
 *   library at it; it answers only requests carrying `Metadata-Flavor: Google`;
 * - an STS token endpoint for Workload Identity Federation: an `external_account` file names it
 *   (token_url) and a CI OIDC token in a file (credential_source), which it exchanges.
 * The STS endpoint also impersonates a service account (the IAM Credentials API's
 * generateAccessToken, given its own token). Both hand out `accessToken`, the one the AuthProxy in front of the emulator lets through.
 */
export interface Seen {
  path: string
  flavor?: string
  body?: URLSearchParams
  authorization?: string
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>(resolve => {
    server.listen(0, '127.0.0.1', resolve)
  })
  return (server.address() as {port: number}).port
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

export class MetadataServer {
  mode: 'grant' | 'refuse' = 'grant'
  readonly seen: Seen[] = []
  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly accessToken: string,
  ) {}

  static async start(accessToken: string): Promise<MetadataServer> {
    // eslint-disable-next-line prefer-const -- assigned once the server it closes over exists
    let metadata!: MetadataServer
    const server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname
      const flavor = req.headers['metadata-flavor'] as string | undefined
      metadata.seen.push({path, flavor})
      const headers = {'metadata-flavor': 'Google'}
      if (flavor !== 'Google') return void res.writeHead(403, headers).end('Missing Metadata-Flavor:Google header.')
      if (path === '/computeMetadata/v1/instance/service-accounts/default/token') {
        if (metadata.mode === 'refuse') return void res.writeHead(403, headers).end('no service account for this pod')
        return void res
          .writeHead(200, {...headers, 'content-type': 'application/json'})
          .end(JSON.stringify({access_token: accessToken, expires_in: 3599, token_type: 'Bearer'}))
      }

      if (path === '/computeMetadata/v1/project/project-id') return void res.writeHead(200, headers).end('mlops-test')
      if (path === '/computeMetadata/v1/instance' || path === '/computeMetadata/v1/instance/' || path === '/')
        return void res.writeHead(200, headers).end('')
      res.writeHead(404, headers).end('not found')
    })
    const port = await listen(server)
    metadata = new MetadataServer(server, `127.0.0.1:${port}`, accessToken)
    return metadata
  }

  /** The token requests seen, with the header they came with. */
  tokenRequests(): Seen[] {
    return this.seen.filter(seen => seen.path.endsWith('/service-accounts/default/token'))
  }

  reset(): void {
    this.mode = 'grant'
    this.seen.length = 0
  }

  async stop(): Promise<void> {
    await new Promise(resolve => {
      this.server.close(resolve)
    })
  }
}

export class StsEndpoint {
  mode: 'grant' | 'refuse' = 'grant'
  readonly seen: Seen[] = []
  /** The CI's OIDC token: the subject token the exchange must carry. No output may contain it. */
  readonly subjectToken = `eyJhbGciOiJSUzI1NiJ9.ci-oidc-${randomBytes(12).toString('base64url')}.sig`
  private constructor(
    private readonly server: Server,
    readonly url: string,
    /** The IAM Credentials API's base, as in `${iamCredentialsUrl}/projects/-/serviceAccounts/SA:generateAccessToken`. */
    readonly iamCredentialsUrl: string,
    readonly accessToken: string,
  ) {}

  static async start(accessToken: string): Promise<StsEndpoint> {
    // eslint-disable-next-line prefer-const -- assigned once the server it closes over exists
    let sts!: StsEndpoint
    const server = createServer((req, res) => {
      void body(req).then(text => {
        const path = new URL(req.url ?? '/', 'http://x').pathname
        const json = (status: number, value: unknown) =>
          res.writeHead(status, {'content-type': 'application/json'}).end(JSON.stringify(value))
        // The IAM Credentials API's generateAccessToken: a service account impersonated with the
        // federated token STS handed out (service_account_impersonation_url).
        const impersonated = /^\/v1\/projects\/-\/serviceAccounts\/([^/]+):generateAccessToken$/.exec(path)
        if (impersonated) {
          sts.seen.push({path, authorization: req.headers.authorization})
          if (sts.mode === 'refuse' || req.headers.authorization !== `Bearer ${accessToken}`)
            return json(403, {
              error: {code: 403, message: 'Permission iam.serviceAccounts.getAccessToken denied', status: 'PERMISSION_DENIED'},
            })
          return json(200, {accessToken, expireTime: new Date(Date.now() + 3600_000).toISOString()})
        }

        const form = new URLSearchParams(text)
        sts.seen.push({path, body: form})
        if (
          sts.mode === 'refuse' ||
          form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:token-exchange' ||
          form.get('subject_token') !== sts.subjectToken
        )
          return json(400, {error: 'invalid_grant', error_description: 'The audience in ID Token does not match the expected audience.'})
        json(200, {
          access_token: accessToken,
          issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
          token_type: 'Bearer',
          expires_in: 3600,
        })
      })
    })
    const port = await listen(server)
    sts = new StsEndpoint(server, `http://127.0.0.1:${port}/v1/token`, `http://127.0.0.1:${port}/v1`, accessToken)
    return sts
  }

  /** An external_account credentials file as `gcloud iam workload-identity-pools create-cred-config` writes it. */
  writeCredentials(): string {
    const dir = tempDir('mlops-wif-')
    const tokenFile = join(dir, 'oidc-token')
    writeFileSync(tokenFile, this.subjectToken, {mode: 0o600})
    const path = join(dir, 'external-account.json')
    writeFileSync(
      path,
      JSON.stringify({
        type: 'external_account',
        audience: '//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ci/providers/github',
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        token_url: this.url,
        credential_source: {file: tokenFile},
      }),
    )
    return path
  }

  reset(): void {
    this.mode = 'grant'
    this.seen.length = 0
  }

  async stop(): Promise<void> {
    await new Promise(resolve => {
      this.server.close(resolve)
    })
  }
}
