import {type Socket, connect as netConnect} from 'node:net'
import {connect as tlsConnect} from 'node:tls'

export interface RawResponse {
  status: number
  body: Buffer
}

const CRLF2 = Buffer.from('\r\n\r\n')

/** A request built once as bytes, sent again and again: the load generator's side of HTTP/1.1. */
export function requestBytes(method: string, url: URL, headers: Record<string, string>, body: Buffer): Buffer {
  const lines = [`${method} ${url.pathname}${url.search} HTTP/1.1`, `host: ${url.host}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), `content-length: ${body.length}`, '', '']
  return Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), body])
}

/**
 * One keep-alive HTTP/1.1 connection with one request in flight, parsing
 * responses itself (content-length, chunked, or until close). The load test
 * uses it instead of http.request, whose per-request objects cost more CPU
 * than the model server spends answering (issue 6: the CLI must not be the
 * bottleneck of its own measurement).
 */
export class Http1Connection {
  private buffer: Buffer = Buffer.alloc(0)
  private pending?: {resolve(response: RawResponse): void; reject(error: Error): void}
  private closeAfter = false
  private ended = false

  private constructor(private readonly socket: Socket, timeoutMs: number) {
    socket.setNoDelay(true)
    socket.setTimeout(timeoutMs, () => socket.destroy(Object.assign(new Error(`no answer in ${Math.round(timeoutMs / 1000)} s`), {code: 'ETIMEDOUT'})))
    socket.on('data', chunk => this.onData(chunk))
    socket.on('end', () => this.onEnd())
    socket.on('error', error => this.fail(error))
    socket.on('close', () => this.fail(Object.assign(new Error('the server closed the connection'), {code: 'ECONNRESET'})))
  }

  static open(url: URL, timeoutMs = 30_000): Promise<Http1Connection> {
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80))
    const host = url.hostname.replace(/^\[|\]$/g, '')
    return new Promise((resolve, reject) => {
      const socket = url.protocol === 'https:' ? tlsConnect({host, port, servername: host}) : netConnect({host, port})
      const ready = url.protocol === 'https:' ? 'secureConnect' : 'connect'
      socket.once(ready, () => {
        socket.off('error', reject)
        resolve(new Http1Connection(socket, timeoutMs))
      })
      socket.once('error', reject)
    })
  }

  /** False once the server said Connection: close, or the socket ended. */
  get reusable(): boolean {
    return !this.closeAfter && !this.ended && !this.socket.destroyed
  }

  send(bytes: Buffer): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      this.pending = {resolve, reject}
      this.socket.write(bytes)
    })
  }

  close(): void {
    this.socket.destroy()
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    this.parse(false)
  }

  private onEnd(): void {
    this.ended = true
    this.parse(true)
    this.fail(Object.assign(new Error('the server closed the connection'), {code: 'ECONNRESET'}))
  }

  private fail(error: Error): void {
    const {pending} = this
    this.pending = undefined
    this.ended = true
    pending?.reject(error)
  }

  /** Completes the pending request when the buffer holds a whole response. */
  private parse(atEnd: boolean): void {
    if (!this.pending) return
    const headEnd = this.buffer.indexOf(CRLF2)
    if (headEnd < 0) return
    const head = this.buffer.toString('latin1', 0, headEnd)
    const status = Number(head.slice(9, 12))
    if (status >= 100 && status < 200) { // an interim response (100 Continue): skip it
      this.buffer = this.buffer.subarray(headEnd + 4)
      this.parse(atEnd)
      return
    }

    let length = -1
    let chunked = false
    for (const line of head.split('\r\n').slice(1)) {
      const colon = line.indexOf(':')
      const name = line.slice(0, colon).trim().toLowerCase()
      const value = line.slice(colon + 1).trim().toLowerCase()
      if (name === 'content-length') length = Number(value)
      else if (name === 'transfer-encoding') chunked = value.includes('chunked')
      else if (name === 'connection') this.closeAfter = value.includes('close')
    }

    const start = headEnd + 4
    let body: Buffer | undefined
    let rest = start
    if (status === 204 || status === 304) {
      body = Buffer.alloc(0)
    } else if (chunked) {
      const parts: Buffer[] = []
      let at = start
      for (;;) {
        const lineEnd = this.buffer.indexOf('\r\n', at)
        if (lineEnd < 0) return
        const size = Number.parseInt(this.buffer.toString('latin1', at, lineEnd), 16)
        if (size === 0) {
          const trailerEnd = this.buffer.indexOf('\r\n', lineEnd + 2) === lineEnd + 2 ? lineEnd + 4 : this.buffer.indexOf(CRLF2, lineEnd) + 4
          if (trailerEnd < 4 || trailerEnd > this.buffer.length) return
          body = Buffer.concat(parts)
          rest = trailerEnd
          break
        }

        if (lineEnd + 2 + size + 2 > this.buffer.length) return
        parts.push(this.buffer.subarray(lineEnd + 2, lineEnd + 2 + size))
        at = lineEnd + 2 + size + 2
      }
    } else if (length >= 0) {
      if (this.buffer.length < start + length) return
      body = this.buffer.subarray(start, start + length)
      rest = start + length
    } else {
      // No length: the body runs to the end of the connection.
      if (!atEnd) return
      body = this.buffer.subarray(start)
      rest = this.buffer.length
      this.closeAfter = true
    }

    this.buffer = this.buffer.subarray(rest)
    const {pending} = this
    this.pending = undefined
    pending.resolve({status, body})
  }
}
