import {closeSync, fstatSync, openSync, readSync} from 'node:fs'

/**
 * Random access to bytes, so that the ONNX reader can skip over large
 * initializers (weights) without reading them: reading a model's signature
 * costs a few small reads, whatever the file size.
 */
export interface ByteSource {
  readonly size: number
  read(offset: number, length: number): Buffer
}

export class BufferSource implements ByteSource {
  constructor(private readonly buffer: Buffer) {}

  get size(): number {
    return this.buffer.length
  }

  read(offset: number, length: number): Buffer {
    return this.buffer.subarray(offset, offset + length)
  }
}

const WINDOW = 256 * 1024

/** A file read through one cached window; reads larger than the window go straight to disk. */
export class FileSource implements ByteSource {
  readonly size: number
  private readonly fd: number
  private window: Buffer = Buffer.alloc(0)
  private windowStart = 0

  constructor(path: string) {
    this.fd = openSync(path, 'r')
    this.size = fstatSync(this.fd).size
  }

  read(offset: number, length: number): Buffer {
    const end = Math.min(offset + length, this.size)
    if (offset >= this.windowStart && end <= this.windowStart + this.window.length) {
      return this.window.subarray(offset - this.windowStart, end - this.windowStart)
    }

    if (end - offset > WINDOW) return this.readDirect(offset, end - offset)
    this.window = this.readDirect(offset, Math.min(WINDOW, this.size - offset))
    this.windowStart = offset
    return this.window.subarray(0, end - offset)
  }

  close(): void {
    closeSync(this.fd)
  }

  private readDirect(offset: number, length: number): Buffer {
    const buffer = Buffer.alloc(length)
    let done = 0
    while (done < length) {
      const n = readSync(this.fd, buffer, done, length - done, offset + done)
      if (n === 0) break
      done += n
    }

    return buffer.subarray(0, done)
  }
}
