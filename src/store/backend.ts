/**
 * The narrow interface each storage backend (GCS, local folder) implements.
 * Model semantics (versions, manifests, aliases, immutability) live above it
 * in ModelStore, once for both backends.
 *
 * Keys are "/"-separated and relative to the store root.
 * A generation identifies one write of one object; the precondition
 * `ifGeneration: '0'` means "only if the object does not exist yet".
 */
export interface ObjectStat {
  size: number
  generation: string
  /** Base64 big-endian CRC32C as GCS reports it; absent where the backend has none. */
  crc32c?: string
}

export interface WriteOptions {
  /** '0': create only; a generation: replace only that exact object; undefined: unconditional. */
  ifGeneration?: string
  contentType?: string
}

export interface UploadOptions extends WriteOptions {
  /** Bytes sent so far in the current attempt. */
  onProgress?: (sent: number, total: number) => void
}

export interface ListResult {
  keys: string[]
  /** With a delimiter: the "folders" one level down, each ending in "/". */
  prefixes: string[]
}

export interface StorageBackend {
  /** The store URI, for messages (gs://bucket/prefix or file:///path). */
  readonly uri: string
  stat(key: string): Promise<ObjectStat | undefined>
  read(key: string): Promise<{data: Buffer; stat: ObjectStat} | undefined>
  write(key: string, data: Buffer, options?: WriteOptions): Promise<ObjectStat>
  upload(key: string, file: string, options?: UploadOptions): Promise<ObjectStat>
  /** Bytes [start, end) of one generation of an object, in order. A chunk may be a view of a reused buffer, valid only during the call: copy what you keep. */
  readRange(
    key: string,
    generation: string,
    start: number,
    end: number,
    onData: (chunk: Buffer) => void,
    signal: AbortSignal,
  ): Promise<void>
  list(prefix: string, options?: {delimiter?: boolean}): Promise<ListResult>
  delete(key: string, options?: {ifGeneration?: string}): Promise<void>
  /** Checks that the store root exists and can be reached (bucket exists). */
  /** Refuses a store that cannot be one (a file, a missing bucket); `mustExist`: a missing local folder too. */
  check(options?: {mustExist?: boolean}): Promise<void>
  /**
   * Removes what writers killed midway left under `prefix` (a folder store's
   * temp files; object stores write nothing partial) and returns their names.
   */
  removeLeftovers(prefix: string): Promise<string[]>
}

/** A write or delete whose generation precondition did not hold (GCS 412, or the local equivalent). */
export class PreconditionFailedError extends Error {
  constructor(readonly key: string) {
    super(`precondition failed for ${key}`)
    this.name = 'PreconditionFailedError'
  }
}

/**
 * By name rather than instanceof: the GCS backend is loaded lazily, and a
 * class loaded twice (CommonJS and ESM under a test runner) fails instanceof.
 */
export function isPreconditionFailed(error: unknown): error is PreconditionFailedError {
  return error instanceof Error && error.name === 'PreconditionFailedError'
}
