/**
 * Just enough of the OCI distribution API to publish an image without a
 * Docker engine: blob existence, monolithic blob upload, manifest put and
 * get. Authentication as registries ask for it: HTTP basic, or a bearer
 * token from the realm named in WWW-Authenticate (Docker Hub, GCR, Artifact
 * Registry, Harbor), got with the same credentials `mlops image push` uses.
 * A registry on a loopback address speaks plain HTTP, as the Docker engine
 * assumes; every other one HTTPS.
 */
import {createReadStream} from 'node:fs'
import {Readable} from 'node:stream'

import {NotFoundError, PermissionError, UnavailableError, UsageError} from '../errors.js'
import {isRegistryHost, splitRepository} from '../util/oci-names.js'
import type {RegistryAuth} from './credentials.js'

export interface ImageReference {
  registry: string
  repository: string
}

/** REGISTRY/REPO (no tag, no digest): where a model image goes. */
export function parseRepository(text: string): ImageReference {
  const slash = text.indexOf('/')
  if (!isRegistryHost(slash > 0 ? text.slice(0, slash) : '')) {
    throw new UsageError(`"${text}" does not name a registry: use REGISTRY/REPOSITORY, e.g. registry.example.com/team/iris-model`)
  }

  const ref = splitRepository(text)
  if (!ref) {
    throw new UsageError(`"${text}" is not a repository: lower-case letters, digits and . _ - / after the registry, no tag`, {
      suggestion: 'e.g. --to registry.example.com/team/iris-model',
    })
  }

  return ref
}

/** Hosts (host:port) that may receive registry credentials besides the registry itself, comma-separated. */
export const TRUSTED_REALMS_ENV = 'MLOPS_REGISTRY_TOKEN_REALMS'

/** Docker Hub's registry hands out tokens from auth.docker.io. */
const KNOWN_REALMS: Record<string, string[]> = {
  'docker.io': ['auth.docker.io'],
  'registry-1.docker.io': ['auth.docker.io'],
  'index.docker.io': ['auth.docker.io'],
}

function trustedRealm(registry: string, realmHost: string): boolean {
  if (realmHost === registry) return true
  const trusted = [...(KNOWN_REALMS[registry] ?? []), ...(process.env[TRUSTED_REALMS_ENV] ?? '').split(',').map(host => host.trim())]
  return trusted.includes(realmHost)
}

export function isLoopback(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '')
  return host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '[::1]'
}

export class RegistryClient {
  private authorization?: string
  private readonly base: string

  constructor(
    readonly ref: ImageReference,
    private readonly auth: RegistryAuth | undefined,
    private readonly timeoutMs = 60_000,
  ) {
    this.base = `${isLoopback(ref.registry) ? 'http' : 'https'}://${ref.registry}/v2/${ref.repository}`
  }

  async hasBlob(digest: string): Promise<boolean> {
    const response = await this.request('HEAD', `/blobs/${digest}`)
    if (response.status === 404) return false
    this.expect(response, [200], `checking blob ${digest}`)
    return true
  }

  /** Uploads a blob in one PUT (POST for a location, then PUT with the digest), unless the registry has it. */
  async uploadBlob(digest: string, size: number, body: {path: string} | {data: Buffer}): Promise<'exists' | 'uploaded'> {
    if (await this.hasBlob(digest)) return 'exists'
    const started = await this.request('POST', '/blobs/uploads/')
    this.expect(started, [202], 'starting an upload')
    const location = started.headers.get('location')
    if (!location) throw new UnavailableError(`${this.ref.registry} started an upload without a Location header`)
    if (!URL.canParse(location, this.base))
      throw new UnavailableError(`${this.ref.registry} started an upload at a Location that is not a URL`)
    const url = new URL(location, this.base)
    if (url.host !== new URL(this.base).host)
      throw new UnavailableError(
        `${this.ref.registry} sent the upload to another host (${url.host}); refusing to send credentials or data there`,
      )
    url.searchParams.set('digest', digest)
    const stream = 'path' in body ? () => Readable.toWeb(createReadStream(body.path)) as ReadableStream : () => body.data
    const put = await this.request('PUT', url.toString(), {
      body: stream,
      headers: {'content-type': 'application/octet-stream', 'content-length': String(size)},
    })
    this.expect(put, [201], `uploading blob ${digest}`)
    return 'uploaded'
  }

  /** Puts a manifest under a tag; returns the digest the registry computed, checked against ours. */
  async putManifest(tag: string, body: Buffer, mediaType: string, digest: string): Promise<void> {
    const response = await this.request('PUT', `/manifests/${tag}`, {body: () => body, headers: {'content-type': mediaType}})
    this.expect(response, [201], `putting the manifest ${tag}`)
    const theirs = response.headers.get('docker-content-digest')
    if (theirs && theirs !== digest) throw new UnavailableError(`${this.ref.registry} stored the manifest as ${theirs}, not ${digest}`)
  }

  /** A manifest by tag or digest, or undefined when there is none. */
  async getManifest(reference: string, mediaType: string): Promise<Buffer | undefined> {
    const response = await this.request('GET', `/manifests/${reference}`, {headers: {accept: mediaType}})
    if (response.status === 404) return undefined
    this.expect(response, [200], `reading the manifest ${reference}`)
    return Buffer.from(await response.arrayBuffer())
  }

  private expect(response: Response, ok: number[], what: string): void {
    if (ok.includes(response.status)) return
    const where = `${this.ref.registry}/${this.ref.repository}`
    if (response.status === 401 || response.status === 403) {
      throw new PermissionError(`${where} refused ${what} (${response.status})`, {
        suggestion: `docker login ${this.ref.registry}, or set MLOPS_REGISTRY_USERNAME and MLOPS_REGISTRY_PASSWORD`,
      })
    }

    if (response.status === 404) throw new NotFoundError(`${where}: not found while ${what}`)
    throw new UnavailableError(`${where} answered ${response.status} while ${what}`)
  }

  private async request(
    method: string,
    path: string,
    init: {body?: () => Buffer | ReadableStream; headers?: Record<string, string>} = {},
  ): Promise<Response> {
    const url = path.startsWith('http') ? path : `${this.base}${path}`
    const send = async () => {
      const body = init.body?.()
      try {
        return await fetch(url, {
          method,
          headers: {...init.headers, ...(this.authorization ? {authorization: this.authorization} : {})},
          body,
          redirect: 'follow',
          signal: AbortSignal.timeout(this.timeoutMs),
          ...(body instanceof ReadableStream ? {duplex: 'half'} : {}),
        })
      } catch (error) {
        throw new UnavailableError(
          `cannot reach ${this.ref.registry}: ${(error as {cause?: Error}).cause?.message ?? (error as Error).message}`,
        )
      }
    }

    const response = await send()
    if (response.status !== 401) return response
    const challenge = response.headers.get('www-authenticate') ?? ''
    // A token is for the scope its challenge named: the first (a HEAD of a blob) asks pull, an upload
    // then answers 401 asking pull,push. One new token per request for the scope it names; basic
    // credentials refused once are refused.
    const widerToken = this.authorization?.startsWith('Bearer ') && /^bearer\b/i.test(challenge)
    if (this.authorization && !widerToken) return response
    await response.arrayBuffer().catch(() => {})
    if (!(await this.authenticate(challenge))) return response
    return send()
  }

  /** Answers a 401's challenge once: basic with the credentials, or a bearer token from the realm. */
  private async authenticate(challenge: string): Promise<boolean> {
    const basic =
      this.auth?.username && this.auth.password
        ? `Basic ${Buffer.from(`${this.auth.username}:${this.auth.password}`).toString('base64')}`
        : undefined
    if (/^basic\b/i.test(challenge)) {
      if (!basic) return false
      this.authorization = basic
      return true
    }

    if (!/^bearer\b/i.test(challenge)) return false
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map(([, key, value]) => [key.toLowerCase(), value]))
    if (!params.realm) return false
    if (!URL.canParse(params.realm) || !/^https?:$/.test(new URL(params.realm).protocol))
      throw new UnavailableError(`${this.ref.registry} names a token service that is not an http(s) URL`)
    const realm = new URL(params.realm)
    // Credentials over plain HTTP only to this machine, even to a trusted token service.
    if (basic && realm.protocol !== 'https:' && !isLoopback(realm.host))
      throw new PermissionError(
        `${this.ref.registry} asks for a token from ${realm.origin} over plain HTTP; refusing to send credentials there`,
        {suggestion: 'a token service off this machine must use https://'},
      )
    // The answer names where credentials go: only to the registry's own host and port, or to a
    // token service the user trusts by name (Docker Hub's is known), never to any host it names.
    if (basic && !trustedRealm(this.ref.registry, realm.host))
      throw new PermissionError(`${this.ref.registry} asks for credentials at another host (${realm.host}); refusing to send them there`, {
        suggestion: `if ${realm.host} is this registry's token service, set ${TRUSTED_REALMS_ENV}=${realm.host}`,
      })
    const scope = params.scope ?? `repository:${this.ref.repository}:pull,push`
    const others = scope
      .split(' ')
      .map(part => /^repository:([^:]+):/.exec(part)?.[1])
      .filter(repository => repository !== undefined && repository !== this.ref.repository)
    if (others.length > 0)
      throw new PermissionError(
        `${this.ref.registry} asks for a token for ${others.join(', ')}, not ${this.ref.repository}; refusing to ask for it`,
      )
    if (params.service) realm.searchParams.set('service', params.service)
    realm.searchParams.set('scope', scope)
    const headers: Record<string, string> = basic ? {authorization: basic} : {}
    const token = await fetch(realm, {headers, signal: AbortSignal.timeout(this.timeoutMs)}).catch(error => {
      throw new UnavailableError(`cannot reach the token service ${realm.origin}: ${(error as Error).message}`)
    })
    if (token.status === 401 || token.status === 403)
      throw new PermissionError(`the token service ${realm.origin} refused the credentials for ${this.ref.registry}`, {
        suggestion: `docker login ${this.ref.registry}`,
      })
    if (!token.ok) throw new UnavailableError(`the token service ${realm.origin} answered ${token.status}`)
    const body = (await token.json().catch(() => ({}))) as {token?: unknown; access_token?: unknown}
    const value = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined
    if (!value || !/^[\w.~+/=-]+$/.test(value)) throw new UnavailableError(`the token service ${realm.origin} sent no usable token`)
    this.authorization = `Bearer ${value}`
    return true
  }
}
