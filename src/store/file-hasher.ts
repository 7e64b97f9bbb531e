import type {Worker} from 'node:worker_threads'

import {startWorker} from '../util/worker.js'

/**
 * SHA-256 (and CRC32C) of a file, computed on a worker thread (hash-worker.ts) that reads
 * the file itself: for a download, each contiguous prefix as soon as it is
 * written (parallel ranges arrive out of order); for an upload, the source
 * file while it is being sent. Hashing (about 1 GB/s) then overlaps with the
 * network instead of holding up the main thread, and no buffer crosses
 * threads. Started like the engine's thread (src/util/worker.ts).
 */
export interface HashRequest {
  /** Bytes [0, upTo) are written. */
  upTo: number
  finish?: boolean
}

export interface FileDigest {
  sha256: string
  size: number
  /** With `crc32c: true` only. */
  crc32c?: string
}

export class FileHasher {
  private readonly worker: Worker
  private readonly result: Promise<FileDigest>

  constructor(path: string, options: {crc32c?: boolean} = {}) {
    this.worker = startWorker('store/hash-worker', {workerData: {path, crc32c: options.crc32c ?? false}})
    this.result = new Promise((resolve, reject) => {
      this.worker.once('message', resolve)
      this.worker.once('error', reject)
      this.worker.once('exit', code => reject(new Error(`hash worker exited with code ${code}`)))
    })
    this.result.catch(() => {})
  }

  /** Bytes [0, upTo) are written: hash them. */
  hashUpTo(upTo: number): void {
    this.worker.postMessage({upTo} satisfies HashRequest)
  }

  async finish(size: number): Promise<FileDigest> {
    this.worker.postMessage({upTo: size, finish: true} satisfies HashRequest)
    try {
      return await this.result
    } finally {
      await this.worker.terminate()
    }
  }

  async abort(): Promise<void> {
    await this.worker.terminate()
  }
}
