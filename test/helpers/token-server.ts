import {createPrivateKey, sign} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {type Server, createServer} from 'node:http'

import {selfSignedCertificate} from './certificate.js'

export interface TokenRequest {
  /** The user the Basic credentials named, or undefined when none came. */
  user?: string
  scope: string
  service: string
  granted: boolean
}

/**
 * A registry token service on 127.0.0.1 (the Docker registry token protocol): GET /token with
 * Basic credentials and ?service=&scope=repository:NAME:ACTIONS answers {token, access_token}, a
 * JWT signed with RS256 whose x5c header carries the certificate the registry trusts. Wrong or
 * missing credentials: 401. Every request is recorded, so a test can say what was asked and by whom.
 */
export async function startTokenServer(
  user: string,
  password: string,
): Promise<{
  realm: string
  certificate: string
  requests: TokenRequest[]
  stop: () => Promise<void>
}> {
  const {keyFile, certFile: certificate} = selfSignedCertificate('mlops-test-issuer')
  const key = createPrivateKey(readFileSync(keyFile))
  const der = readFileSync(certificate, 'utf8').replaceAll(/-----[A-Z ]+-----|\s/g, '')
  const base64url = (value: Buffer | string) => Buffer.from(value).toString('base64url')
  const requests: TokenRequest[] = []

  const server: Server = createServer((request, response) => {
    const url = new URL(request.url!, 'http://127.0.0.1')
    const basic = /^Basic (.+)$/.exec(request.headers.authorization ?? '')?.[1]
    const [givenUser, givenPassword] = basic ? Buffer.from(basic, 'base64').toString('utf8').split(/:(.*)/s) : []
    const scope = url.searchParams.get('scope') ?? ''
    const granted = givenUser === user && givenPassword === password
    requests.push({user: givenUser, scope, service: url.searchParams.get('service') ?? '', granted})
    if (url.pathname !== '/token' || !granted) {
      response.writeHead(401, {'content-type': 'application/json'}).end('{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}')
      return
    }

    const [, name, actions] = /^repository:([^:]+):(.+)$/.exec(scope) ?? []
    const now = Math.floor(Date.now() / 1000)
    const header = base64url(JSON.stringify({alg: 'RS256', typ: 'JWT', x5c: [der]}))
    const claims = base64url(
      JSON.stringify({
        iss: 'mlops-test-issuer',
        sub: user,
        aud: url.searchParams.get('service'),
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: `${now}-${requests.length}`,
        access: name ? [{type: 'repository', name, actions: actions.split(',')}] : [],
      }),
    )
    const signature = base64url(sign('sha256', Buffer.from(`${header}.${claims}`), key))
    const token = `${header}.${claims}.${signature}`
    response.writeHead(200, {'content-type': 'application/json'}).end(JSON.stringify({token, access_token: token, expires_in: 300}))
  })
  await new Promise<void>(resolve => {
    server.listen(0, '127.0.0.1', resolve)
  })
  const {port} = server.address() as {port: number}
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certificate,
    requests,
    stop: async () =>
      new Promise<void>(resolve => {
        server.close(() => resolve())
      }),
  }
}
