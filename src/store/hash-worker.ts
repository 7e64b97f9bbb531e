/**
 * The FileHasher's thread (file-hasher.ts): reads the file itself, up to where the main thread
 * says bytes are written, and hashes it (SHA-256, and CRC32C when asked). No buffer crosses threads.
 */
import {createHash} from 'node:crypto'
import {closeSync, openSync, readSync} from 'node:fs'
import {parentPort, workerData} from 'node:worker_threads'

import {crc32c as crc32cOf} from '../util/digest.js'
import type {FileDigest, HashRequest} from './file-hasher.js'

const port = parentPort!
const {path, crc32c: withCrc32c} = workerData as {path: string; crc32c: boolean}
// Only when asked (a push): util/digest.ts loads the native addon on first use; a download hashes SHA-256 alone.
const crc32c = withCrc32c ? crc32cOf : undefined
const hash = createHash('sha256')
let crc = 0
const fd = openSync(path, 'r')
const buffer = Buffer.allocUnsafe(4 << 20)
let position = 0

port.on('message', (message: HashRequest) => {
  while (position < message.upTo) {
    const n = readSync(fd, buffer, 0, Math.min(buffer.length, message.upTo - position), position)
    if (n === 0) throw new Error(`file ended at ${position} before ${message.upTo}`)
    hash.update(buffer.subarray(0, n))
    if (crc32c) crc = crc32c(buffer.subarray(0, n), crc)
    position += n
  }

  if (message.finish) {
    closeSync(fd)
    const crcBytes = Buffer.alloc(4)
    crcBytes.writeUInt32BE(crc >>> 0)
    port.postMessage({
      sha256: hash.digest('hex'),
      size: position,
      crc32c: crc32c ? crcBytes.toString('base64') : undefined,
    } satisfies FileDigest)
  }
})
