import {type FileHandle, mkdir, open, rename, rm, stat} from 'node:fs/promises'
import {dirname} from 'node:path'

import {createHash} from 'node:crypto'
import {createReadStream, writeSync} from 'node:fs'

import {IntegrityError} from '../errors.js'
import {removeStaleTemps, tempPathFor, trackTemp} from '../util/fs-atomic.js'
import {withRetry} from '../util/retry.js'
import type {ObjectStat, StorageBackend} from './backend.js'
import {FileHasher} from './file-hasher.js'

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

/**
 * 4 ranges of 8 MiB in flight. Ranges are written into the file as they arrive, so neither
 * number sets the loader's memory (about 80 MB at any model size); they set the requests per
 * object and how far the hashed prefix trails the fastest range (bench/RESULTS.md, issue 26).
 */
export const DEFAULT_TUNING: Omit<TransferTuning, 'timeoutMs'> = {chunkSize: 8 << 20, concurrency: 4, stallMs: 20_000}

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
export async function downloadVerified(request: DownloadRequest): Promise<{sha256: string; size: number}> {
  const {destination, expected, label} = request
  if (request.stat.size !== expected.size) {
    throw new IntegrityError(
      `${label}: the stored object is ${request.stat.size} bytes but the manifest says ${expected.size}; the store is corrupt`,
      {
        suggestion: 'push the model again as a new version',
      },
    )
  }

  await mkdir(dirname(destination), {recursive: true})
  // A loader killed mid-download (OOM, SIGKILL) left its temp file: in a restarted pod it would
  // fill the emptyDir until the pod is evicted.
  await removeStaleTemps(destination)
  const temp = tempPathFor(destination)
  const untrack = trackTemp(temp)
  const file = await open(temp, 'wx', 0o644)
  try {
    const digest = await fetchInto(file, temp, request)
    await file.close()
    if (digest.sha256 !== expected.sha256) {
      throw new IntegrityError(
        `${label}: downloaded content has sha256 ${digest.sha256}, the manifest says ${expected.sha256}; the stored object is corrupt`,
        {
          suggestion: 'the destination was left untouched; push the model again as a new version',
        },
      )
    }

    await rename(temp, destination)
    return digest
  } finally {
    await file.close().catch(() => {})
    await rm(temp, {force: true})
    untrack()
  }
}

/** The SHA-256 of `path` if it is a file of `size` bytes (other sizes are refused without reading). */
export async function existingSha256(path: string, size: number): Promise<string | undefined> {
  const info = await stat(path).catch(() => undefined)
  if (!info?.isFile() || info.size !== size) return undefined
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path, {highWaterMark: 4 << 20})) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/**
 * Fetches all ranges into the open file, each chunk written at its offset as
 * it arrives. One range: hashed on this thread as it arrives. Several:
 * fetched `concurrency` at a time and hashed by a FileHasher as the written
 * prefix grows. A retried range writes its bytes again over the same
 * offsets; the hasher reads a range only once it is complete.
 */
async function fetchInto(file: FileHandle, path: string, request: DownloadRequest): Promise<{sha256: string; size: number}> {
  const {backend, key, stat: object, tuning, onProgress} = request
  const total = object.size
  const chunkCount = Math.max(1, Math.ceil(total / tuning.chunkSize))
  const controller = new AbortController()
  let received = 0

  const fetchRange = async (index: number): Promise<void> => {
    const start = index * tuning.chunkSize
    const end = Math.min(total, start + tuning.chunkSize)
    return withRetry(
      async () => {
        const hash = chunkCount === 1 ? createHash('sha256') : undefined
        let got = 0
        await withStallTimer(tuning.stallMs, controller.signal, (signal, touch) =>
          backend.readRange(
            key,
            object.generation,
            start,
            end,
            chunk => {
              touch()
              if (got + chunk.length > end - start)
                throw Object.assign(new Error(`the store sent more than the ${end - start} bytes of range ${start}-${end - 1}`), {
                  code: 'ECONNRESET',
                })
              // Written now, synchronously: the chunk may be a view of the connection's reused read
              // buffer, valid only during this call. Writing it costs the one copy that keeping it
              // would, and nothing is kept: no range buffers, so memory does not grow with the
              // ranges in flight, and the page cache gets small writes, not one large write per
              // range (bench/RESULTS.md, issue 26: a third of the time at 1 GiB).
              writeFully(file.fd, chunk, start + got)
              hash?.update(chunk)
              got += chunk.length
              received += chunk.length
              onProgress?.(received, total)
            },
            signal,
          ),
        ).catch(error => {
          received -= got
          throw error
        })
        if (got !== end - start) {
          received -= got
          throw Object.assign(new Error(`expected ${end - start} bytes of range ${start}-${end - 1}, got ${got}`), {code: 'ECONNRESET'})
        }

        if (hash) single = hash.digest('hex')
      },
      {what: `downloading ${request.label} from ${backend.uri}`, timeoutMs: tuning.timeoutMs},
    )
  }

  let single: string | undefined
  if (chunkCount === 1) {
    await fetchRange(0)
    return {sha256: single!, size: total}
  }

  const hasher = new FileHasher(path)
  const done = new Set<number>()
  let nextToFetch = 0
  let written = 0
  let failed: unknown
  const worker = async (): Promise<void> => {
    while (failed === undefined && nextToFetch < chunkCount) {
      const index = nextToFetch++
      await fetchRange(index)
      done.add(index)
      while (done.has(written)) done.delete(written++)
      hasher.hashUpTo(Math.min(total, written * tuning.chunkSize))
    }
  }

  await Promise.all(
    Array.from({length: Math.min(tuning.concurrency, chunkCount)}, () =>
      worker().catch(error => {
        failed ??= error
        controller.abort()
      }),
    ),
  )
  if (failed !== undefined) {
    await hasher.abort()
    throw failed
  }

  return hasher.finish(total)
}

/** Writes all of `chunk` at `position` (a write may take part of it). */
function writeFully(fd: number, chunk: Buffer, position: number): void {
  for (let done = 0; done < chunk.length;) done += writeSync(fd, chunk, done, chunk.length - done, position + done)
}

/**
 * Runs `fn` with a signal that aborts when `touch` has not been called for
 * `stallMs`. `touch` runs for every network chunk, so it only stores a time;
 * one interval timer does the checking.
 */
async function withStallTimer<T>(
  stallMs: number,
  parent: AbortSignal,
  fn: (signal: AbortSignal, touch: () => void) => Promise<T>,
): Promise<T> {
  const controller = new AbortController()
  const onParentAbort = () => controller.abort(parent.reason)
  parent.addEventListener('abort', onParentAbort)
  let last = Date.now()
  const touch = () => {
    last = Date.now()
  }

  const timer = setInterval(
    () => {
      if (Date.now() - last >= stallMs) controller.abort(Object.assign(new Error(`no data for ${stallMs / 1000}s`), {code: 'STALLED'}))
    },
    Math.min(1000, Math.max(50, stallMs / 4)),
  )
  try {
    return await fn(controller.signal, touch)
  } catch (error) {
    // An abort surfaces as AbortError; report the stall that caused it so the retry policy sees it.
    if (controller.signal.aborted && !parent.aborted) throw controller.signal.reason
    throw error
  } finally {
    clearInterval(timer)
    parent.removeEventListener('abort', onParentAbort)
  }
}
