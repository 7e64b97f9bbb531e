import {type FileHandle, mkdir, open, rename, rm, stat} from 'node:fs/promises'
import {dirname} from 'node:path'

import {IntegrityError} from '../errors.js'
import {type Digest, Digester, digestFile} from '../util/digest.js'
import {tempPathFor} from '../util/fs-atomic.js'
import {withRetry} from '../util/retry.js'
import type {ObjectStat, StorageBackend} from './backend.js'

export interface TransferTuning {
  /** Objects larger than this are fetched as parallel ranged reads of this size. */
  chunkSize: number
  /** Ranged reads in flight at once. */
  concurrency: number
  /** Retry window for each range, in ms (store.timeout). */
  timeoutMs: number
  /** A request with no bytes for this long is aborted and retried. */
  stallMs: number
}

export const DEFAULT_TUNING: Omit<TransferTuning, 'timeoutMs'> = {chunkSize: 32 << 20, concurrency: 4, stallMs: 20_000}

export interface DownloadRequest {
  backend: StorageBackend
  key: string
  stat: ObjectStat
  destination: string
  expected: {sha256: string; size: number}
  /** Names the object in messages (iris@3). */
  label: string
  tuning: TransferTuning
  onProgress?: (bytes: number, total: number) => void
}

/**
 * Downloads an object to `destination` through a temporary file in the same
 * folder, verifies size and SHA-256, then renames it into place: the
 * destination holds the old file or the verified new one, never a partial or
 * corrupt one. Large objects are fetched with parallel ranged reads and
 * hashed in order as the ranges arrive.
 */
export async function downloadVerified(request: DownloadRequest): Promise<Digest> {
  const {destination, expected, label} = request
  if (request.stat.size !== expected.size) {
    throw new IntegrityError(`${label}: the stored object is ${request.stat.size} bytes but the manifest says ${expected.size}; the store is corrupt`, {
      suggestion: 'push the model again as a new version',
    })
  }

  await mkdir(dirname(destination), {recursive: true})
  const temp = tempPathFor(destination)
  const file = await open(temp, 'wx', 0o644)
  try {
    const digest = await fetchInto(file, request)
    await file.close()
    if (digest.sha256 !== expected.sha256) {
      throw new IntegrityError(`${label}: downloaded content has sha256 ${digest.sha256}, the manifest says ${expected.sha256}; the stored object is corrupt`, {
        suggestion: 'the destination was left untouched; push the model again as a new version',
      })
    }

    await rename(temp, destination)
    return digest
  } finally {
    await file.close().catch(() => {})
    await rm(temp, {force: true})
  }
}

/** The digest of `path` if it exists and has `size` bytes (cheap refusal otherwise). */
export async function existingDigest(path: string, size: number): Promise<Digest | undefined> {
  const info = await stat(path).catch(() => undefined)
  if (!info?.isFile() || info.size !== size) return undefined
  return digestFile(path)
}

async function fetchInto(file: FileHandle, request: DownloadRequest): Promise<Digest> {
  const {backend, key, stat: object, tuning, onProgress} = request
  const total = object.size
  const chunkCount = Math.max(1, Math.ceil(total / tuning.chunkSize))
  const digester = new Digester()
  const finished = new Map<number, Buffer>()
  let nextToHash = 0
  let nextToFetch = 0
  let received = 0
  let failed: unknown
  const controller = new AbortController()
  // Bound on ranges fetched ahead of the one being hashed, so memory stays at about 2 × concurrency × chunkSize.
  const window = tuning.concurrency * 2
  const waiting: Array<() => void> = []

  // Each range lands in one buffer and reaches the file in one write: thousands of small writes cost more than the network.
  const fetchRange = async (index: number): Promise<Buffer> => {
    const start = index * tuning.chunkSize
    const end = Math.min(total, start + tuning.chunkSize)
    const buffer = Buffer.allocUnsafe(end - start)
    return withRetry(async () => {
      let got = 0
      await withStallTimer(tuning.stallMs, controller.signal, (signal, touch) => backend.readRange(key, object.generation, start, end, chunk => {
        touch()
        if (got + chunk.length > buffer.length) throw Object.assign(new Error(`server sent more than the ${buffer.length} bytes asked for`), {code: 'ECONNRESET'})
        chunk.copy(buffer, got)
        got += chunk.length
        received += chunk.length
        onProgress?.(received, total)
      }, signal)).catch(error => {
        received -= got
        throw error
      })
      if (got !== buffer.length) {
        received -= got
        throw Object.assign(new Error(`short read: ${got} of ${buffer.length} bytes`), {code: 'ECONNRESET'})
      }

      return buffer
    }, {what: `downloading ${request.label} from ${backend.uri}`, timeoutMs: tuning.timeoutMs})
  }

  const worker = async (): Promise<void> => {
    while (failed === undefined && nextToFetch < chunkCount) {
      if (nextToFetch - nextToHash >= window) {
        await new Promise<void>(resolve => {
          waiting.push(resolve)
        })
        continue
      }

      const index = nextToFetch++
      const buffer = await fetchRange(index)
      await file.write(buffer, 0, buffer.length, index * tuning.chunkSize)
      finished.set(index, buffer)
      while (finished.has(nextToHash)) {
        digester.update(finished.get(nextToHash)!)
        finished.delete(nextToHash++)
      }

      for (const wake of waiting.splice(0)) wake()
    }
  }

  const workers = Array.from({length: Math.min(tuning.concurrency, chunkCount)}, () => worker().catch(error => {
    failed ??= error
    controller.abort()
    for (const wake of waiting.splice(0)) wake()
  }))
  await Promise.all(workers)
  if (failed !== undefined) throw failed
  return digester.digest()
}

/** Runs `fn` with a signal that aborts when `touch` has not been called for `stallMs`. */
async function withStallTimer<T>(
  stallMs: number,
  parent: AbortSignal,
  fn: (signal: AbortSignal, touch: () => void) => Promise<T>,
): Promise<T> {
  const controller = new AbortController()
  const onParentAbort = () => controller.abort(parent.reason)
  parent.addEventListener('abort', onParentAbort)
  let timer: NodeJS.Timeout | undefined
  const touch = () => {
    clearTimeout(timer)
    timer = setTimeout(() => controller.abort(Object.assign(new Error(`no data for ${stallMs / 1000}s`), {code: 'STALLED'})), stallMs)
  }

  touch()
  try {
    return await fn(controller.signal, touch)
  } catch (error) {
    // An abort surfaces as AbortError; report the stall that caused it so the retry policy sees it.
    if (controller.signal.aborted && !parent.aborted) throw controller.signal.reason
    throw error
  } finally {
    clearTimeout(timer)
    parent.removeEventListener('abort', onParentAbort)
  }
}
