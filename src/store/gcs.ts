import {type File, Storage} from '@google-cloud/storage'
import {PassThroughClient} from 'google-auth-library'
import {createReadStream} from 'node:fs'
import {stat as statFile} from 'node:fs/promises'
import {Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import {NotFoundError, PermissionError} from '../errors.js'
import {withRetry} from '../util/retry.js'
import {type ListResult, type ObjectStat, PreconditionFailedError, type StorageBackend, type UploadOptions, type WriteOptions} from './backend.js'

export interface GcsOptions {
  bucket: string
  prefix: string
  /** API endpoint for emulators or private endpoints; requests to it carry no credentials. */
  endpoint?: string
  /** No credentials at all (public buckets). */
  anonymous?: boolean
  project?: string
  /** Retry window for transient failures, in ms. */
  timeoutMs: number
}

/** Objects this size and larger use a resumable upload session (restartable, one streamed PUT). */
const RESUMABLE_THRESHOLD = 8 * 1024 * 1024

/**
 * Google Cloud Storage through @google-cloud/storage: Application Default
 * Credentials unless anonymous or pointed at an endpoint. Every call goes
 * through one retry policy (ours: the library's own retries are off so that
 * there is one bounded window), and generation preconditions make retried
 * writes safe.
 */
export class GcsBackend implements StorageBackend {
  readonly uri: string
  private readonly storage: Storage
  private readonly prefix: string

  constructor(private readonly options: GcsOptions) {
    this.prefix = options.prefix.replace(/^\/+|\/+$/g, '')
    this.uri = `gs://${options.bucket}${this.prefix ? `/${this.prefix}` : ''}`
    this.storage = new Storage({
      apiEndpoint: options.endpoint,
      projectId: options.project,
      retryOptions: {autoRetry: false},
      ...(options.anonymous ? {authClient: new PassThroughClient()} : {}),
    })
  }

  async check(): Promise<void> {
    await this.list('', {delimiter: true, maxResults: 1})
  }

  async stat(key: string): Promise<ObjectStat | undefined> {
    return this.call(`reading ${this.describe(key)}`, async () => {
      try {
        const [metadata] = await this.file(key).getMetadata()
        return toStat(metadata)
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
      try {
        const [data] = await this.file(key, info.generation).download({validation: false})
        return {data, stat: info}
      } catch (error) {
        // Replaced or deleted between stat and read: report what is there now.
        if (statusOf(error) === 404) return undefined
        throw error
      }
    })
  }

  async write(key: string, data: Buffer, options: WriteOptions = {}): Promise<ObjectStat> {
    return this.call(`writing ${this.describe(key)}`, async () => {
      const file = this.file(key)
      await this.mapWriteErrors(key, file.save(data, {
        resumable: false,
        validation: false,
        metadata: {contentType: options.contentType ?? 'application/json', cacheControl: 'no-store'},
        ...preconditionOf(options.ifGeneration),
      }))
      return toStat(file.metadata)
    })
  }

  async upload(key: string, source: string, options: UploadOptions = {}): Promise<ObjectStat> {
    const {size} = await statFile(source)
    return this.call(`uploading to ${this.describe(key)}`, async () => {
      const file = this.file(key)
      const tap = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          options.onData?.(chunk)
          callback(null, chunk)
        },
      })
      const upload = file.createWriteStream({
        resumable: size >= RESUMABLE_THRESHOLD,
        validation: false,
        metadata: {contentType: options.contentType ?? 'application/octet-stream'},
        ...preconditionOf(options.ifGeneration),
      })
      await this.mapWriteErrors(key, pipeline(createReadStream(source, {highWaterMark: 1 << 20}), tap, upload))
      return toStat(file.metadata)
    })
  }

  async readRange(key: string, generation: string, start: number, end: number, onData: (chunk: Buffer) => void, signal: AbortSignal): Promise<void> {
    if (end <= start) return
    const stream = this.file(key, generation).createReadStream({start, end: end - 1, validation: false, decompress: false})
    try {
      await pipeline(stream, async function * (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) onData(chunk)
      }, {signal})
    } catch (error) {
      if (statusOf(error) === 404) throw new PreconditionFailedError(key)
      throw error
    }
  }

  async list(prefix: string, options: {delimiter?: boolean; maxResults?: number} = {}): Promise<ListResult> {
    const result: ListResult = {keys: [], prefixes: []}
    const base = this.prefix ? `${this.prefix}/` : ''
    let pageToken: string | undefined
    do {
      // eslint-disable-next-line no-await-in-loop
      const page = await this.call(`listing ${this.uri}`, async () => {
        try {
          const [files, next, response] = await this.storage.bucket(this.options.bucket).getFiles({
            prefix: base + prefix, delimiter: options.delimiter ? '/' : undefined, autoPaginate: false,
            maxResults: options.maxResults ?? 1000, pageToken,
          })
          return {files, next: next as {pageToken?: string} | null, prefixes: (response as {prefixes?: string[]})?.prefixes ?? []}
        } catch (error) {
          throw this.mapBucketErrors(error)
        }
      })
      result.keys.push(...page.files.map(f => f.name.slice(base.length)))
      result.prefixes.push(...page.prefixes.map(p => p.slice(base.length)))
      pageToken = options.maxResults ? undefined : page.next?.pageToken
    } while (pageToken)
    return result
  }

  async delete(key: string, options: {ifGeneration?: string} = {}): Promise<void> {
    await this.call(`deleting ${this.describe(key)}`, async () => {
      try {
        await this.file(key).delete(options.ifGeneration === undefined ? {} : {ifGenerationMatch: Number(options.ifGeneration)})
      } catch (error) {
        const status = statusOf(error)
        if (status === 404 && options.ifGeneration === undefined) return
        if (status === 412 || status === 404) throw new PreconditionFailedError(key)
        throw this.mapBucketErrors(error)
      }
    })
  }

  private file(key: string, generation?: string): File {
    const name = this.prefix ? `${this.prefix}/${key}` : key
    return this.storage.bucket(this.options.bucket).file(name, generation === undefined ? {} : {generation: Number(generation)})
  }

  private describe(key: string): string {
    return `${this.uri}/${key}`
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await withRetry(fn, {what, timeoutMs: this.options.timeoutMs})
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

    // stat, read and delete handle an object's 404 themselves; one reaching here (list, write, upload) is the bucket's.
    if (status === 404) {
      return new NotFoundError(`bucket ${this.options.bucket} does not exist`, {suggestion: 'check --store / MLOPS_STORE / store.uri in mlops.yaml'})
    }

    return error
  }
}

function preconditionOf(ifGeneration: string | undefined): {preconditionOpts?: {ifGenerationMatch: number}} {
  return ifGeneration === undefined ? {} : {preconditionOpts: {ifGenerationMatch: Number(ifGeneration)}}
}

function toStat(metadata: {size?: number | string; generation?: number | string; crc32c?: string}): ObjectStat {
  return {size: Number(metadata.size ?? 0), generation: String(metadata.generation), crc32c: metadata.crc32c}
}

function statusOf(error: unknown): number | undefined {
  const {code, status} = (error ?? {}) as {code?: unknown; status?: unknown}
  if (typeof code === 'number') return code
  if (typeof status === 'number') return status
  return undefined
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]
}
