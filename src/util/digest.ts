import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {createRequire} from 'node:module'

const requireNative = createRequire(import.meta.url)
let crc32cAddon: (typeof import('@node-rs/crc32'))['crc32c'] | undefined

/**
 * CRC32C from the native addon, loaded on first use: only pushes compute it,
 * and every other command (the loader too) starts without loading it.
 */
export function crc32c(chunk: Buffer, initial: number): number {
  crc32cAddon ??= (requireNative('@node-rs/crc32') as typeof import('@node-rs/crc32')).crc32c
  return crc32cAddon(chunk, initial)
}

export interface Digest {
  size: number
  sha256: string
  /** Base64 of the big-endian CRC32C, the form GCS reports in object metadata. */
  crc32c: string
}

/** SHA-256 and CRC32C of a byte stream in one pass. */
export class Digester {
  private readonly sha = createHash('sha256')
  private crc = 0
  private size = 0

  update(chunk: Buffer): void {
    this.sha.update(chunk)
    this.crc = crc32c(chunk, this.crc)
    this.size += chunk.length
  }

  digest(): Digest {
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(this.crc >>> 0)
    return {size: this.size, sha256: this.sha.digest('hex'), crc32c: crc.toString('base64')}
  }
}

export async function digestFile(path: string): Promise<Digest> {
  const digester = new Digester()
  for await (const chunk of createReadStream(path, {highWaterMark: 4 << 20})) digester.update(chunk as Buffer)
  return digester.digest()
}

export function digestBuffer(data: Buffer): Digest {
  const digester = new Digester()
  digester.update(data)
  return digester.digest()
}
