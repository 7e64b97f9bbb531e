import {createHash} from 'node:crypto'
import {Worker} from 'node:worker_threads'

import {crc32cModulePath} from '../util/digest.js'

/**
 * SHA-256 (and CRC32C) of a file, computed on a worker thread that reads
 * the file itself: for a download, each contiguous prefix as soon as it is
 * written (parallel ranges arrive out of order); for an upload, the source
 * file while it is being sent. Hashing (about 1 GB/s) then overlaps with the
 * network instead of holding up the main thread, and no buffer crosses
 * threads. Plain JavaScript evaluated in the worker, so it runs the same from
 * dist/ and under a TypeScript test runner.
 */
const WORKER_SOURCE = `
const {parentPort, workerData} = require('node:worker_threads')
const {createHash} = require('node:crypto')
const {openSync, readSync, closeSync} = require('node:fs')
const crc32c = workerData.crc32cModule ? require(workerData.crc32cModule).crc32c : undefined
const hash = createHash('sha256')
let crc = 0
const fd = openSync(workerData.path, 'r')
const buffer = Buffer.allocUnsafe(4 << 20)
let position = 0
parentPort.on('message', message => {
  while (position < message.upTo) {
    const n = readSync(fd, buffer, 0, Math.min(buffer.length, message.upTo - position), position)
    if (n === 0) throw new Error('file ended at ' + position + ' before ' + message.upTo)
    hash.update(buffer.subarray(0, n))
    if (crc32c) crc = crc32c(buffer.subarray(0, n), crc)
    position += n
  }
  if (message.finish) {
    closeSync(fd)
    const crcBytes = Buffer.alloc(4)
    crcBytes.writeUInt32BE(crc >>> 0)
    parentPort.postMessage({sha256: hash.digest('hex'), size: position, crc32c: crc32c ? crcBytes.toString('base64') : undefined})
  }
})
`

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
    this.worker = new Worker(WORKER_SOURCE, {eval: true, workerData: {path, crc32cModule: options.crc32c ? crc32cModulePath() : undefined}})
    this.result = new Promise((resolve, reject) => {
      this.worker.once('message', resolve)
      this.worker.once('error', reject)
      this.worker.once('exit', code => reject(new Error(`hash worker exited with code ${code}`)))
    })
    this.result.catch(() => {})
  }

  /** Bytes [0, upTo) are written: hash them. */
  hashUpTo(upTo: number): void {
    this.worker.postMessage({upTo})
  }

  async finish(size: number): Promise<FileDigest> {
    this.worker.postMessage({upTo: size, finish: true})
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

export function sha256Of(chunks: Buffer[]): string {
  const hash = createHash('sha256')
  for (const chunk of chunks) hash.update(chunk)
  return hash.digest('hex')
}
