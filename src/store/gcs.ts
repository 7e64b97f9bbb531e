import {createReadStream, readFileSync} from 'node:fs'
import {stat as statFile} from 'node:fs/promises'
import {randomBytes} from 'node:crypto'
import {Readable} from 'node:stream'

import {NotFoundError, PermissionError, UnavailableError, UsageError} from '../errors.js'
import {withRetry} from '../util/retry.js'
import {
  type ListResult,
  type ObjectStat,
  PreconditionFailedError,
  type StorageBackend,
  type UploadOptions,
  type WriteOptions,
} from './backend.js'
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
   * failed upload restarts from byte 0 within the retry window. Metadata,
   * listing and small objects use the client.
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
        throw this.mapBucketErrors(error)
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
      throw this.mapBucketErrors(error)
    }
  }

  private async mapWriteErrors<T>(key: string, operation: Promise<T>): Promise<T> {
    try {
      return await operation
    } catch (error) {
      if (statusOf(error) === 412 || statusOf(error) === 409) throw new PreconditionFailedError(key)
      throw error
    }
  }

  /** Turns HTTP 401/403 and a missing bucket into the documented errors; leaves the rest. */
  private mapBucketErrors(error: unknown): unknown {
    const status = statusOf(error)
    if (status === 401 || status === 403) {
      return new PermissionError(`${this.uri}: permission denied (${firstLine(error)})`, {
        suggestion: this.options.anonymous
          ? 'the bucket is not public: drop --anonymous and use credentials (gcloud auth application-default login, or GOOGLE_APPLICATION_CREDENTIALS)'
          : 'check the credentials (gcloud auth application-default login, or GOOGLE_APPLICATION_CREDENTIALS) and their roles on the bucket',
      })
    }

    const credentials = credentialsError(error)
    if (credentials) return credentials
    // A server that answers in HTML (or anything but JSON) is not a GCS API, whatever it says.
    const {headers, response} = (error ?? {}) as {headers?: Record<string, unknown>; response?: {headers?: Record<string, unknown>}}
    const contentType = String(headers?.['content-type'] ?? response?.headers?.['content-type'] ?? '')
    // GCS states application/json on every error; a 404 that states nothing is a plain web server.
    const stated = headers !== undefined || response?.headers !== undefined
    if (status !== undefined && (contentType === '' ? stated && status === 404 : !/json/i.test(contentType))) {
      return new UsageError(
        `${this.options.endpoint ?? 'the storage endpoint'} answered HTTP ${status} with ${contentType.split(';')[0] || 'no content type'}: it is not a GCS JSON API`,
        {
          suggestion:
            'check --gcs-endpoint / MLOPS_GCS_ENDPOINT / store.endpoint (fake-gcs-server answers at http://HOST:PORT, without a path)',
        },
      )
    }

    // stat, read and delete handle an object's 404 themselves; one reaching here (list, write, upload) is the bucket's.
    if (status === 404) {
      return new NotFoundError(`bucket ${this.options.bucket} does not exist`, {
        suggestion: 'check --store / MLOPS_STORE / store.uri in mlops.yaml',
      })
    }

    return error
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

function toStat(metadata: {size?: number | string; generation?: number | string; crc32c?: string}): ObjectStat {
  return {size: Number(metadata.size ?? 0), generation: String(metadata.generation), crc32c: metadata.crc32c}
}

const NOT_GCS = {suggestion: 'check --gcs-endpoint / MLOPS_GCS_ENDPOINT / store.endpoint'}

/**
 * One page of an object listing as the JSON API returns it. Every name must
 * be under the prefix asked for (a name outside it would become a key that
 * walks out of the store); anything else is the server's fault, said so.
 */
function parseListing(body: Buffer, prefix: string): {names: string[]; prefixes: string[]; nextPageToken?: string} {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    throw new UsageError('the storage endpoint answered a listing with something that is not JSON: it is not a GCS JSON API', NOT_GCS)
  }
  const {items = [], prefixes = [], nextPageToken} = (parsed ?? {}) as {items?: unknown; prefixes?: unknown; nextPageToken?: unknown}
  const names = Array.isArray(items) ? items.map(item => (item as {name?: unknown})?.name) : undefined
  // A `.` or `..` segment would make a key that walks out of the store once joined to a path.
  const valid = (list: unknown[] | undefined): list is string[] =>
    Array.isArray(list) &&
    list.every(name => typeof name === 'string' && name.startsWith(prefix) && !name.split('/').some(part => part === '.' || part === '..'))
  if (!valid(names) || !valid(prefixes as unknown[]) || (nextPageToken !== undefined && typeof nextPageToken !== 'string'))
    throw new UsageError(
      `the storage endpoint answered a listing of ${prefix || 'the bucket'} with names outside it, with . or .. segments, or not strings`,
      NOT_GCS,
    )
  return {names, prefixes: prefixes as string[], nextPageToken: nextPageToken}
}

/** An object's metadata as the JSON API returns it; anything else is the server's fault, said so. */
function parseMetadata(body: Buffer): {size?: number | string; generation?: number | string; crc32c?: string} {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    throw new UsageError(
      'the storage endpoint answered an object lookup with something that is not JSON: it is not a GCS JSON API',
      NOT_GCS,
    )
  }
  const metadata = (parsed ?? {}) as {size?: unknown; generation?: unknown; crc32c?: unknown}
  const size = Number(metadata.size)
  const generation = String(metadata.generation ?? '')
  if (
    !Number.isSafeInteger(size) ||
    size < 0 ||
    !/^\d{1,20}$/.test(generation) ||
    (metadata.crc32c !== undefined && typeof metadata.crc32c !== 'string')
  )
    throw new UsageError(
      'the storage endpoint answered an object lookup with metadata that is not a GCS object (size, generation)',
      NOT_GCS,
    )
  return {size, generation, crc32c: metadata.crc32c}
}

function statusOf(error: unknown): number | undefined {
  const {code, status} = (error ?? {}) as {code?: unknown; status?: unknown}
  if (typeof code === 'number') return code
  if (typeof status === 'number') return status
  return undefined
}

/**
 * A key file that cannot be used, said without its content: the JSON parser's
 * message quotes the file's first characters, which may be key material.
 */
function credentialsError(error: unknown): Error | undefined {
  const file = process.env.GOOGLE_APPLICATION_CREDENTIALS
  const where = file ? `GOOGLE_APPLICATION_CREDENTIALS (${file})` : 'the application default credentials'
  const fix = 'point GOOGLE_APPLICATION_CREDENTIALS at a service-account key (JSON), or run gcloud auth application-default login'
  const message = error instanceof Error ? error.message : ''
  // The auth library's "The file at X does not exist, or it is not a file." for a missing path or a folder.
  if (file && /does not exist, or it is not a file/.test(message)) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new PermissionError(`${where} does not exist`, {suggestion: fix})
    return new UsageError(`${where} is not a file`, {suggestion: fix})
  }

  if (error instanceof SyntaxError) return new UsageError(`${where} is not a JSON key file`, {suggestion: fix})
  if (
    /DECODER routines|PEM|private key|client_email|No key or keyFile set|incoming JSON object does not|Must pass in a JSON object/i.test(
      message,
    )
  ) {
    return new UsageError(`${where} is not a usable service-account key`, {suggestion: fix})
  }

  if (/Could not load the default credentials/i.test(message))
    return new PermissionError(`no Google credentials found for ${where}`, {suggestion: fix})
  if (/invalid_grant|invalid_client|unauthorized_client/i.test(message))
    return new PermissionError(
      `${where} was refused by the token endpoint (${/invalid_grant|invalid_client|unauthorized_client/i.exec(message)![0]})`,
      {
        suggestion:
          credentialsType(file) === 'external_account'
            ? "Workload Identity Federation refused the exchange: check the provider's audience and attribute condition, and that the CI job's OIDC token is fresh"
            : 'the key may be revoked or expired: create a new key, or use another account',
      },
    )
  return undefined
}

/** The `type` of a credentials file (service_account, external_account, ...), never any other part of it. */
function credentialsType(file: string | undefined): string | undefined {
  if (!file) return undefined
  try {
    const type = (JSON.parse(readFileSync(file, 'utf8')) as {type?: unknown})?.type
    return typeof type === 'string' ? type : undefined
  } catch {
    return undefined
  }
}

/** The first line of an error's message, without our HTTP client's status prefix (the storage library's errors have none). */
function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0].replace(/^HTTP \d{3}: /, '')
}
