import {createReadStream} from 'node:fs'
import {stat as statFile} from 'node:fs/promises'
import {randomBytes} from 'node:crypto'
import {Readable} from 'node:stream'

import {UnavailableError, UsageError} from '../errors.js'
import {withRetry} from '../util/retry.js'
import {
  type ListResult,
  type ObjectStat,
  PreconditionFailedError,
  type StorageBackend,
  type UploadOptions,
  type WriteOptions,
} from './backend.js'
import {gcsError, statusOf} from './gcs-errors.js'
import {NOT_GCS, parseListing, parseMetadata, toStat} from './gcs-json.js'
import {rangeRequest, streamRequest} from './http.js'

type Storage = import('../vendor/gcs.js').Storage
type File = import('../vendor/gcs.js').File
type GoogleAuth = import('../vendor/gcs-auth.js').GoogleAuth

/** The scope the storage client asks for too: reads, writes and deletes of objects. */
const SCOPES = ['https://www.googleapis.com/auth/devstorage.full_control']

export interface GcsOptions {
  bucket: string
  prefix: string
  /** API endpoint for emulators or private endpoints; a plain-http one gets no credentials unless anonymous is false. */
  endpoint?: string
  /** true: no credentials at all (public buckets); false: credentials whatever the endpoint; unset: see endpoint. */
  anonymous?: boolean
  project?: string
  /** Retry window for transient failures, in ms. */
  timeoutMs: number
}

/**
 * Google Cloud Storage: Application Default Credentials unless anonymous or
 * pointed at a plain-http endpoint. Reads (stat, read, ranged reads, listing:
 * all the loader and render do) go over the JSON API directly with our HTTP
 * client, so they load neither @google-cloud/storage nor, without
 * credentials, the auth library; small writes and deletes go through
 * @google-cloud/storage, loaded on first use, with the same credentials. Every
 * call goes through one retry policy (ours: the library's own retries are off
 * so that there is one bounded window), and generation preconditions make
 * retried writes safe. Whatever the server answers is validated before use.
 */
export class GcsBackend implements StorageBackend {
  readonly uri: string
  private readonly prefix: string
  private readonly apiEndpoint: string
  private storageClient?: Promise<Storage>
  private auth?: Promise<GoogleAuth>

  constructor(private readonly options: GcsOptions) {
    this.prefix = options.prefix.replace(/^\/+|\/+$/g, '')
    this.uri = `gs://${options.bucket}${this.prefix ? `/${this.prefix}` : ''}`
    // As the storage client takes it: an endpoint without a scheme is https.
    const endpoint = options.endpoint ?? 'https://storage.googleapis.com'
    this.apiEndpoint = (/^https?:\/\//.test(endpoint) ? endpoint : `https://${endpoint}`).replace(/\/+$/, '')
  }

  /** Uploads are single requests with preconditions: nothing partial is ever stored. */
  async removeLeftovers(_prefix: string): Promise<string[]> {
    return []
  }

  async check(_options: {mustExist?: boolean} = {}): Promise<void> {
    await this.list('', {delimiter: true, maxResults: 1})
  }

  async stat(key: string): Promise<ObjectStat | undefined> {
    return this.call(`reading ${this.describe(key)}`, async () => {
      try {
        const response = await streamRequest({method: 'GET', url: this.objectUrl(key), headers: await this.authHeaders()})
        return toStat(parseMetadata(response.body))
      } catch (error) {
        if (statusOf(error) === 404) return undefined
        throw error
      }
    })
  }

  async read(key: string): Promise<{data: Buffer; stat: ObjectStat} | undefined> {
    const info = await this.stat(key)
    if (!info) return undefined
    return this.call(`reading ${this.describe(key)}`, async () => {
      const url = this.objectUrl(key)
      url.searchParams.set('alt', 'media')
      url.searchParams.set('generation', info.generation)
      try {
        // identity: the bytes as stored, whatever encoding they were uploaded with.
        const response = await streamRequest({method: 'GET', url, headers: {...(await this.authHeaders()), 'accept-encoding': 'identity'}})
        return {data: response.body, stat: info}
      } catch (error) {
        // Replaced or deleted between stat and read: report what is there now.
        if (statusOf(error) === 404) return undefined
        throw error
      }
    })
  }

  async write(key: string, data: Buffer, options: WriteOptions = {}): Promise<ObjectStat> {
    return this.call(`writing ${this.describe(key)}`, async () => {
      const file = await this.file(key)
      await this.mapWriteErrors(
        key,
        file.save(data, {
          resumable: false,
          validation: false,
          metadata: {contentType: options.contentType ?? 'application/json', cacheControl: 'no-store'},
          ...preconditionOf(options.ifGeneration),
        }),
      )
      return toStat(file.metadata)
    })
  }

  /**
   * Bulk bytes go over the JSON API directly, with the storage client's
   * credentials: the upload is one multipart request whose file part is
   * streamed, the download is ranged alt=media reads. Measured against
   * fake-gcs-server on 512 MiB: the client's resumable upload stream took
   * 3x longer. Multipart because it carries ifGenerationMatch everywhere
   * (fake-gcs-server ignores it on uploadType=media) in one request; a
   * failed upload restarts from byte 0 within the retry window. Only small
   * writes and deletes use the storage client (see the class comment).
   */
  async upload(key: string, source: string, options: UploadOptions = {}): Promise<ObjectStat> {
    const {size} = await statFile(source)
    const contentType = options.contentType ?? 'application/octet-stream'
    return this.call(`uploading to ${this.describe(key)}`, async () => {
      const url = new URL(`${this.apiEndpoint}/upload/storage/v1/b/${encodeURIComponent(this.options.bucket)}/o`)
      url.searchParams.set('uploadType', 'multipart')
      if (options.ifGeneration !== undefined) url.searchParams.set('ifGenerationMatch', options.ifGeneration)
      const boundary = `mlops-${randomBytes(12).toString('hex')}`
      const head = Buffer.from(
        `--${boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n${JSON.stringify({name: this.objectName(key), contentType})}\r\n` +
          `--${boundary}\r\ncontent-type: ${contentType}\r\n\r\n`,
      )
      const tail = Buffer.from(`\r\n--${boundary}--\r\n`)
      let sent = 0
      const response = await this.mapWriteErrors(
        key,
        streamRequest({
          method: 'POST',
          url,
          headers: {
            ...(await this.authHeaders()),
            'content-type': `multipart/related; boundary=${boundary}`,
            'content-length': head.length + size + tail.length,
          },
          body: Readable.from(
            multipartBody(head, source, size, tail, chunk => {
              sent += chunk.length
              options.onProgress?.(sent, size)
            }),
          ),
        }),
      )
      return toStat(JSON.parse(response.body.toString('utf8')))
    })
  }

  async readRange(
    key: string,
    generation: string,
    start: number,
    end: number,
    onData: (chunk: Buffer) => void,
    signal: AbortSignal,
  ): Promise<void> {
    if (end <= start) return
    const url = this.objectUrl(key)
    url.searchParams.set('alt', 'media')
    url.searchParams.set('generation', generation)
    try {
      await rangeRequest({
        url,
        signal,
        onData,
        // identity: the bytes as stored, so sizes and checksums hold even for objects uploaded with gzip encoding.
        headers: {...(await this.authHeaders()), range: `bytes=${start}-${end - 1}`, 'accept-encoding': 'identity'},
      })
    } catch (error) {
      if (statusOf(error) === 404) throw new PreconditionFailedError(key)
      throw error
    }
  }

  async list(prefix: string, options: {delimiter?: boolean; maxResults?: number} = {}): Promise<ListResult> {
    const result: ListResult = {keys: [], prefixes: []}
    const base = this.prefix ? `${this.prefix}/` : ''
    let pageToken: string | undefined
    // A server that repeats a page token, or never stops giving new ones, would keep this loop
    // going for ever: a repeated token is refused at once, and the whole listing shares one
    // deadline (the store timeout, at least a minute: a page of 1000 names takes well under a second).
    const seen = new Set<string>()
    const started = Date.now()
    const deadline = started + Math.max(this.options.timeoutMs, 60_000)
    do {
      const url = new URL(`${this.apiEndpoint}/storage/v1/b/${encodeURIComponent(this.options.bucket)}/o`)
      url.searchParams.set('prefix', base + prefix)
      if (options.delimiter) url.searchParams.set('delimiter', '/')
      url.searchParams.set('maxResults', String(options.maxResults ?? 1000))
      url.searchParams.set('fields', 'items(name),prefixes,nextPageToken')
      if (pageToken) url.searchParams.set('pageToken', pageToken)
      const page = await this.call(`listing ${this.uri}`, async () =>
        parseListing((await streamRequest({method: 'GET', url, headers: await this.authHeaders()})).body, base + prefix),
      )
      result.keys.push(...page.names.map(name => name.slice(base.length)))
      result.prefixes.push(...page.prefixes.map(p => p.slice(base.length)))
      pageToken = options.maxResults ? undefined : page.nextPageToken
      if (pageToken !== undefined) {
        if (seen.has(pageToken) || pageToken === '')
          throw new UsageError(
            `the storage endpoint answered a listing of ${this.uri} with a page token it already gave: it is not a GCS JSON API`,
            NOT_GCS,
          )
        if (Date.now() > deadline)
          throw new UnavailableError(
            `listing ${this.uri} did not end within ${Math.round((deadline - started) / 1000)}s (${seen.size + 1} pages)`,
            {
              suggestion: 'check the storage endpoint; store.timeout (MLOPS_STORE_TIMEOUT) sets how long a listing may take',
            },
          )
        seen.add(pageToken)
      }
    } while (pageToken)
    return result
  }

  async delete(key: string, options: {ifGeneration?: string} = {}): Promise<void> {
    await this.call(`deleting ${this.describe(key)}`, async () => {
      try {
        await (await this.file(key)).delete(options.ifGeneration === undefined ? {} : {ifGenerationMatch: Number(options.ifGeneration)})
      } catch (error) {
        const status = statusOf(error)
        if (status === 404 && options.ifGeneration === undefined) return
        if (status === 412 || status === 404) throw new PreconditionFailedError(key)
        throw this.bucketError(error)
      }
    })
  }

  private objectName(key: string): string {
    return this.prefix ? `${this.prefix}/${key}` : key
  }

  private objectUrl(key: string): URL {
    return new URL(
      `${this.apiEndpoint}/storage/v1/b/${encodeURIComponent(this.options.bucket)}/o/${encodeURIComponent(this.objectName(key))}`,
    )
  }

  private async file(key: string): Promise<File> {
    return (await this.storage()).bucket(this.options.bucket).file(this.objectName(key))
  }

  /** The storage client, loaded on first use, with the same credentials as our own requests. */
  private async storage(): Promise<Storage> {
    this.storageClient ??= (async () => {
      const [{Storage}, {PassThroughClient}] = await Promise.all([import('../vendor/gcs.js'), import('../vendor/gcs-auth.js')])
      // The client would take STORAGE_EMULATOR_HOST as its base URL without the /storage/v1 path
      // (every call then 404s as "bucket does not exist"): resolveStoreSettings already made it
      // the endpoint, so the client must not see it.
      const emulator = process.env.STORAGE_EMULATOR_HOST
      delete process.env.STORAGE_EMULATOR_HOST
      try {
        return new Storage({
          apiEndpoint: this.apiEndpoint,
          projectId: this.options.project,
          retryOptions: {autoRetry: false},
          // An https endpoint (a private or regional Google endpoint) still gets credentials; a plain-http emulator
          // does not, unless anonymous is explicitly false.
          useAuthWithCustomEndpoint: this.authenticated,
          authClient: this.authenticated ? await this.googleAuth() : new PassThroughClient(),
        })
      } finally {
        if (emulator !== undefined) process.env.STORAGE_EMULATOR_HOST = emulator
      }
    })()
    return this.storageClient
  }

  /** Application Default Credentials, loaded on first use: one for our requests and the storage client. */
  private async googleAuth(): Promise<GoogleAuth> {
    this.auth ??= import('../vendor/gcs-auth.js').then(({GoogleAuth}) => new GoogleAuth({scopes: SCOPES, projectId: this.options.project}))
    return this.auth
  }

  /** The credentials' headers for one request; none when anonymous or to a plain-http emulator. */
  private async authHeaders(): Promise<Record<string, string>> {
    if (!this.authenticated) return {}
    const headers = await (await this.googleAuth()).getRequestHeaders()
    return {...(headers as Record<string, string>)}
  }

  private get authenticated(): boolean {
    if (this.options.anonymous !== undefined) return !this.options.anonymous
    return !this.options.endpoint?.startsWith('http://')
  }

  private describe(key: string): string {
    return `${this.uri}/${key}`
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      // An endpoint of one's own (an emulator, a private endpoint) is named when it cannot be reached; output redacts its userinfo.
      const where = this.options.endpoint ? ` at ${this.options.endpoint}` : ''
      return await withRetry(fn, {what: `${what}${where}`, timeoutMs: this.options.timeoutMs})
    } catch (error) {
      throw this.bucketError(error)
    }
  }

  private bucketError(error: unknown): unknown {
    return gcsError(error, {uri: this.uri, bucket: this.options.bucket, endpoint: this.options.endpoint, anonymous: this.options.anonymous})
  }

  private async mapWriteErrors<T>(key: string, operation: Promise<T>): Promise<T> {
    try {
      return await operation
    } catch (error) {
      if (statusOf(error) === 412 || statusOf(error) === 409) throw new PreconditionFailedError(key)
      throw error
    }
  }
}

/** Exactly `size` bytes of the file: a file that grows meanwhile cannot overrun content-length. */
async function* multipartBody(
  head: Buffer,
  source: string,
  size: number,
  tail: Buffer,
  onFileChunk: (chunk: Buffer) => void,
): AsyncGenerator<Buffer> {
  yield head
  for await (const chunk of createReadStream(source, {highWaterMark: 4 << 20, end: size - 1})) {
    onFileChunk(chunk as Buffer)
    yield chunk as Buffer
  }

  yield tail
}

function preconditionOf(ifGeneration: string | undefined): {preconditionOpts?: {ifGenerationMatch: number}} {
  return ifGeneration === undefined ? {} : {preconditionOpts: {ifGenerationMatch: Number(ifGeneration)}}
}
