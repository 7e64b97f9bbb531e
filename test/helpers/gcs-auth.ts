import {type KeyObject, generateKeyPairSync, randomBytes, verify} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import {type IncomingMessage, type Server, type ServerResponse, createServer, request} from 'node:http'
import {createServer as createHttpsServer} from 'node:https'
import type {Socket} from 'node:net'
import {join} from 'node:path'

import {selfSignedCertificate} from './certificate.js'
import {tempDir} from './stores.js'

/*
 * Google credentials without Google: a service-account key made here, an
 * OAuth token endpoint that checks the key's JWT-bearer grants, and a proxy
 * in front of the GCS emulator that lets through only requests carrying the
 * token it handed out. All on 127.0.0.1.
 */

/** The hosts google-auth-library sends a service account's token request to (gtoken 7 ignores the key's token_uri). */
const GOOGLE_TOKEN_HOSTS = new Set(['www.googleapis.com:443', 'oauth2.googleapis.com:443'])
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer'

export interface ServiceAccountKey {
  /** The JSON key file, as GOOGLE_APPLICATION_CREDENTIALS names it. */
  path: string
  clientEmail: string
  /** PEM, as in the file: no output may ever contain it. */
  privateKey: string
  publicKey: KeyObject
}

/** A fresh RSA key pair written as a service-account JSON key file, as the Cloud console downloads it. */
export function writeServiceAccountKey(tokenUri: string, options: {clientEmail?: string} = {}): ServiceAccountKey {
  const {privateKey, publicKey} = generateKeyPairSync('rsa', {modulusLength: 2048})
  const pem = privateKey.export({type: 'pkcs8', format: 'pem'}).toString()
  const clientEmail = options.clientEmail ?? `model-loader-${randomBytes(3).toString('hex')}@mlops-test.iam.gserviceaccount.com`
  const path = join(tempDir('mlops-key-'), 'key.json')
  writeFileSync(
    path,
    JSON.stringify(
      {
        type: 'service_account',
        project_id: 'mlops-test',
        private_key_id: randomBytes(20).toString('hex'),
        private_key: pem,
        client_email: clientEmail,
        client_id: String(BigInt(`0x${randomBytes(8).toString('hex')}`)),
        auth_uri: 'https://accounts.google.com/o/oauth2/auth',
        token_uri: tokenUri,
        auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
        universe_domain: 'googleapis.com',
      },
      null,
      2,
    ),
    {mode: 0o600},
  )
  return {path, clientEmail, privateKey: pem, publicKey}
}

interface TlsIdentity {
  key: string
  cert: string
  /** The certificate as a file, for NODE_EXTRA_CA_CERTS. */
  caFile: string
}

let tls: TlsIdentity | undefined

/** A self-signed certificate for Google's token hosts, trusted only by processes given caFile. */
function tlsIdentity(): TlsIdentity {
  if (tls) return tls
  const {keyFile, certFile: caFile} = selfSignedCertificate(
    'www.googleapis.com',
    [...GOOGLE_TOKEN_HOSTS].map(h => h.split(':')[0]),
  )
  tls = {key: readFileSync(keyFile, 'utf8'), cert: readFileSync(caFile, 'utf8'), caFile}
  return tls
}

export interface Grant {
  iss: string
  scope: string
  /** The assertion's RS256 signature verified with the registered public key. */
  signatureValid: boolean
}

/**
 * An OAuth 2.0 token endpoint for service accounts (RFC 7523 JWT-bearer
 * grant). It answers at `tokenUri` (plain HTTP, what the key file says) and,
 * as HTTPS_PROXY, for Google's token hosts: the auth library posts to
 * https://www.googleapis.com/oauth2/v4/token whatever token_uri says, so the
 * CONNECT is answered here with a certificate the CLI trusts through
 * NODE_EXTRA_CA_CERTS. No CONNECT to any other host is ever dialled.
 */
export class TokenEndpoint {
  /** What the next grants get: a token, or a refusal as Google words it. */
  mode: 'grant' | 'invalid_grant' = 'grant'
  readonly accessToken = `ya29.test-${randomBytes(24).toString('base64url')}`
  readonly grants: Grant[] = []
  /** host:port of every CONNECT (a CONNECT to anything but Google's token hosts is refused). */
  readonly connects: string[] = []
  private readonly accounts = new Map<string, KeyObject>()
  private readonly sockets = new Set<Socket>()

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<TokenEndpoint> {
    const identity = tlsIdentity()
    // eslint-disable-next-line prefer-const -- assigned once the server it closes over exists
    let endpoint!: TokenEndpoint
    const handle = (req: IncomingMessage, res: ServerResponse) => {
      endpoint.answer(req, res).catch(error => res.destroy(error))
    }

    const https = createHttpsServer({key: identity.key, cert: identity.cert}, handle)
    const server = createServer(handle)
    server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      endpoint.connects.push(req.url ?? '')
      if (!GOOGLE_TOKEN_HOSTS.has(req.url ?? '')) {
        socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n')
        return
      }

      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length > 0) socket.unshift(head)
      https.emit('connection', socket)
    })
    server.on('connection', (socket: Socket) => {
      endpoint.sockets.add(socket)
      socket.once('close', () => endpoint.sockets.delete(socket))
    })
    const port = await listen(server)
    endpoint = new TokenEndpoint(server, `http://127.0.0.1:${port}`)
    return endpoint
  }

  /** Back to granting, with nothing recorded. */
  reset(): void {
    this.mode = 'grant'
    this.grants.length = 0
    this.connects.length = 0
  }

  /** What the key file's token_uri says. */
  get tokenUri(): string {
    return `${this.url}/token`
  }

  /** A service account this endpoint knows: grants must be signed by its private key. */
  register(key: Pick<ServiceAccountKey, 'clientEmail' | 'publicKey'>): void {
    this.accounts.set(key.clientEmail, key.publicKey)
  }

  /** Environment that sends the CLI's token requests here and nothing else anywhere but 127.0.0.1. */
  env(): Record<string, string> {
    return {
      HTTPS_PROXY: this.url,
      https_proxy: this.url,
      NO_PROXY: '127.0.0.1,localhost',
      no_proxy: '127.0.0.1,localhost',
      NODE_EXTRA_CA_CERTS: tlsIdentity().caFile,
    }
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise(resolve => {
      this.server.close(resolve)
    })
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = new URLSearchParams((await readBody(req)).toString('utf8'))
    if (req.method !== 'POST' || !/^\/(oauth2\/v4\/)?token$/.test(new URL(req.url ?? '/', 'http://x').pathname)) {
      sendJson(res, 404, {error: 'not_found'})
      return
    }

    if (body.get('grant_type') !== JWT_BEARER) {
      sendJson(res, 400, {error: 'unsupported_grant_type', error_description: `expected ${JWT_BEARER}`})
      return
    }

    const grant = this.check(body.get('assertion') ?? '')
    this.grants.push(grant)
    if (this.mode === 'invalid_grant' || !grant.signatureValid) {
      sendJson(res, 400, {error: 'invalid_grant', error_description: 'Invalid JWT Signature.'})
      return
    }

    sendJson(res, 200, {access_token: this.accessToken, expires_in: 3599, token_type: 'Bearer'})
  }

  private check(assertion: string): Grant {
    const [header = '', payload = '', signature = ''] = assertion.split('.')
    const decode = (part: string) => {
      try {
        return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>
      } catch {
        return {}
      }
    }

    const claims = decode(payload)
    const iss = String(claims.iss ?? '')
    const publicKey = this.accounts.get(iss)
    const signatureValid =
      publicKey !== undefined &&
      decode(header).alg === 'RS256' &&
      verify('RSA-SHA256', Buffer.from(`${header}.${payload}`), publicKey, Buffer.from(signature, 'base64url')) &&
      Number(claims.exp) * 1000 > Date.now()
    return {iss, scope: String(claims.scope ?? ''), signatureValid}
  }
}

export interface ProxiedRequest {
  method: string
  path: string
  authorization?: string
}

/**
 * The storage API's credential check in front of the (anonymous) emulator:
 * a request whose Authorization is not `Bearer <token>` gets 401 as GCS
 * answers it; `mode = 'forbidden'` answers 403 to every request (a valid
 * token for an account without a role on the bucket).
 */
export class AuthProxy {
  mode: 'check' | 'forbidden' = 'check'
  readonly requests: ProxiedRequest[] = []

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(target: string, token: string): Promise<AuthProxy> {
    // eslint-disable-next-line prefer-const -- assigned once the server it closes over exists
    let proxy!: AuthProxy
    const upstream = new URL(target)
    const server = createServer((req, res) => {
      const {authorization} = req.headers
      proxy.requests.push({method: req.method ?? '', path: req.url ?? '', authorization})
      if (authorization !== `Bearer ${token}`) {
        req.resume()
        sendJson(res, 401, gcsError(401, 'Invalid Credentials', 'authError'), {
          'www-authenticate': 'Bearer realm="https://accounts.google.com/"',
        })
        return
      }

      if (proxy.mode === 'forbidden') {
        req.resume()
        sendJson(
          res,
          403,
          gcsError(
            403,
            'model-loader@mlops-test.iam.gserviceaccount.com does not have storage.objects.list access to the Google Cloud Storage bucket.',
            'forbidden',
          ),
        )
        return
      }

      const forward = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: {...req.headers, host: upstream.host},
        },
        answer => {
          res.writeHead(answer.statusCode ?? 502, answer.headers)
          answer.pipe(res)
        },
      )
      forward.on('error', error => res.destroy(error))
      req.pipe(forward)
    })
    const port = await listen(server)
    proxy = new AuthProxy(server, `http://127.0.0.1:${port}`)
    return proxy
  }

  /** Back to checking tokens, with nothing recorded. */
  reset(): void {
    this.mode = 'check'
    this.requests.length = 0
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise(resolve => {
      this.server.close(resolve)
    })
  }
}

function gcsError(code: number, message: string, reason: string): unknown {
  return {error: {code, message, errors: [{message, domain: 'global', reason}]}}
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('server has no port')
  return address.port
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = JSON.stringify(body)
  res.writeHead(status, {'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(data), ...headers})
  res.end(data)
}
