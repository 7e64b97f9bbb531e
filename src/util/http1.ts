import {type Socket, isIP, connect as netConnect} from 'node:net'
import {connect as tlsConnect} from 'node:tls'

export interface RawResponse {
  status: number
  /** Lower-case names; a repeated header keeps its last value. */
  headers: Record<string, string>
  /** The whole body; empty when it went to `onBody`. */
  body: Buffer
}

const CRLF = Buffer.from('\r\n')
const CRLF2 = Buffer.from('\r\n\r\n')
/** One read buffer per connection, reused for every read (net/tls `onread`): no allocation per packet. */
const READ_BUFFER = 256 * 1024

/** A request built once as bytes, sent again and again: the load generator's side of HTTP/1.1. */
export function requestBytes(method: string, url: URL, headers: Record<string, number | string>, body?: Buffer): Buffer {
  const lines = [
    `${method} ${url.pathname}${url.search} HTTP/1.1`,
    `host: ${url.host}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ]
  if (body) lines.push(`content-length: ${body.length}`)
  lines.push('', '')
  return body ? Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), body]) : Buffer.from(lines.join('\r\n'), 'latin1')
}

type BodyMode = {kind: 'chunked'} | {kind: 'length'; remaining: number} | {kind: 'none'} | {kind: 'until-close'}

/**
 * An incremental HTTP/1.1 response parser. Input buffers may be views of a
 * reused read buffer: whatever it keeps across calls it copies, and body
 * bytes reach `onBody` as views valid only during the call.
 */
class ResponseParser {
  private pending: Buffer = Buffer.alloc(0)
  private head?: {status: number; headers: Record<string, string>}
  private mode?: BodyMode
  private chunk: 'crlf' | 'data' | 'size' | 'trailers' = 'size'
  private chunkRemaining = 0

  constructor(
    private readonly handlers: {
      onHead(status: number, headers: Record<string, string>): void
      onBody(bytes: Buffer): void
      onComplete(): void
    },
  ) {}

  get midResponse(): boolean {
    return this.head !== undefined || this.pending.length > 0
  }

  push(input: Buffer): void {
    let data = this.pending.length > 0 ? Buffer.concat([this.pending, input]) : input
    this.pending = Buffer.alloc(0)
    while (data.length > 0) {
      const used = this.head ? this.body(data) : this.readHead(data)
      if (used < 0) {
        // Not enough bytes for the next step: keep them (a copy: `input` may be reused).
        this.pending = Buffer.from(data)
        return
      }

      data = data.subarray(used)
    }
  }

  /** The connection ended: completes a body that runs until close. */
  end(): boolean {
    if (this.head && this.mode?.kind === 'until-close') {
      this.complete()
      return true
    }

    return false
  }

  private readHead(data: Buffer): number {
    const end = data.indexOf(CRLF2)
    if (end < 0) return -1
    const lines = data.toString('latin1', 0, end).split('\r\n')
    const status = Number(lines[0].slice(9, 12))
    const headers: Record<string, string> = {}
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':')
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
    }

    // An interim response (100 Continue) is skipped.
    if (status >= 100 && status < 200) return end + 4
    this.head = {status, headers}
    const length = headers['content-length']
    if (status === 204 || status === 304) this.mode = {kind: 'none'}
    else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) this.mode = {kind: 'chunked'}
    else if (length !== undefined) this.mode = {kind: 'length', remaining: Number(length)}
    else this.mode = {kind: 'until-close'}
    this.chunk = 'size'
    this.handlers.onHead(status, headers)
    if (this.mode.kind === 'none' || (this.mode.kind === 'length' && this.mode.remaining === 0)) this.complete()
    return end + 4
  }

  private body(data: Buffer): number {
    const mode = this.mode!
    if (mode.kind === 'until-close') {
      this.handlers.onBody(data)
      return data.length
    }

    if (mode.kind === 'length') {
      const take = Math.min(mode.remaining, data.length)
      mode.remaining -= take
      this.handlers.onBody(data.subarray(0, take))
      if (mode.remaining === 0) this.complete()
      return take
    }

    // chunked
    if (this.chunk === 'size') {
      const end = data.indexOf(CRLF)
      if (end < 0) return -1
      this.chunkRemaining = Number.parseInt(data.toString('latin1', 0, end).split(';')[0].trim(), 16)
      this.chunk = this.chunkRemaining === 0 ? 'trailers' : 'data'
      return end + 2
    }

    if (this.chunk === 'data') {
      const take = Math.min(this.chunkRemaining, data.length)
      this.chunkRemaining -= take
      this.handlers.onBody(data.subarray(0, take))
      if (this.chunkRemaining === 0) this.chunk = 'crlf'
      return take
    }

    if (this.chunk === 'crlf') {
      if (data.length < 2) return -1
      this.chunk = 'size'
      return 2
    }

    // trailers: lines until an empty one
    const end = data.indexOf(CRLF)
    if (end < 0) return -1
    if (end === 0) this.complete()
    return end + 2
  }

  private complete(): void {
    this.head = undefined
    this.mode = undefined
    this.handlers.onComplete()
  }
}

interface Exchange {
  resolve(response: RawResponse): void
  reject(error: Error): void
  onBody?: (bytes: Buffer) => void
  status: number
  headers: Record<string, string>
  parts: Buffer[]
}

/**
 * One keep-alive HTTP/1.1 connection (plain or TLS) with one request in
 * flight, reading into one reused buffer and parsing responses itself
 * (content-length, chunked, or until close). Serves two hot paths where
 * Node's http client costs more CPU than the work: predict's load generator
 * (issue 6: the CLI must not be the bottleneck of its own measurement) and
 * the store's ranged downloads (the loader's lead time).
 */
export class Http1Connection {
  private exchange?: Exchange
  private closeAfter = false
  private ended = false
  private readonly parser: ResponseParser

  private constructor(
    private readonly socket: Socket,
    timeoutMs: number,
    setRead: (callback: (bytes: Buffer) => void) => void,
  ) {
    this.parser = new ResponseParser({
      onHead: (status, headers) => {
        if (!this.exchange) return
        this.exchange.status = status
        this.exchange.headers = headers
        if (/close/i.test(headers.connection ?? '')) this.closeAfter = true
      },
      onBody: bytes => {
        const exchange = this.exchange
        if (!exchange) return
        const ok = exchange.status >= 200 && exchange.status < 300
        if (ok && exchange.onBody) exchange.onBody(bytes)
        else exchange.parts.push(Buffer.from(bytes))
      },
      onComplete: () => {
        const exchange = this.exchange
        this.exchange = undefined
        exchange?.resolve({status: exchange.status, headers: exchange.headers, body: Buffer.concat(exchange.parts)})
      },
    })
    setRead(bytes => {
      try {
        this.parser.push(bytes)
      } catch (error) {
        socket.destroy(error as Error)
      }
    })
    socket.setNoDelay(true)
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(Object.assign(new Error(`no answer in ${Math.round(timeoutMs / 1000)} s`), {code: 'ETIMEDOUT'})),
    )
    socket.on('end', () => {
      this.ended = true
      this.parser.end()
      this.fail(Object.assign(new Error('the server closed the connection'), {code: 'ECONNRESET'}))
    })
    socket.on('error', error => this.fail(error))
    socket.on('close', () => {
      this.ended = true
      this.fail(Object.assign(new Error('the server closed the connection'), {code: 'ECONNRESET'}))
    })
  }

  static open(url: URL, options: {timeoutMs?: number; ca?: Buffer | string} = {}): Promise<Http1Connection> {
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80))
    const host = url.hostname.replace(/^\[|\]$/g, '')
    let deliver: (bytes: Buffer) => void = () => {}
    const onread = {
      buffer: Buffer.allocUnsafe(READ_BUFFER),
      callback(length: number, buffer: Uint8Array) {
        deliver(Buffer.from(buffer.buffer, buffer.byteOffset, length))
        return true
      },
    }
    return new Promise((resolve, reject) => {
      const secure = url.protocol === 'https:'
      // TLS trusts Node's roots plus NODE_EXTRA_CA_CERTS, as the storage client does; `ca` replaces them.
      const socket = secure
        ? tlsConnect({host, port, ...(isIP(host) ? {} : {servername: host}), onread, ...(options.ca ? {ca: options.ca} : {})} as never)
        : netConnect({host, port, onread})
      socket.once(secure ? 'secureConnect' : 'connect', () => {
        socket.off('error', reject)
        resolve(
          new Http1Connection(socket, options.timeoutMs ?? 30_000, callback => {
            deliver = callback
          }),
        )
      })
      socket.once('error', reject)
    })
  }

  /** False once the server said Connection: close, or the socket ended. */
  get reusable(): boolean {
    return !this.closeAfter && !this.ended && !this.socket.destroyed && !this.parser.midResponse
  }

  /**
   * Sends one request and resolves with the whole response. With `onBody`, a
   * 2xx body goes to it instead, as views valid only during each call (copy
   * what you keep); other statuses are still collected into `body`.
   */
  send(bytes: Buffer, options: {onBody?: (bytes: Buffer) => void; signal?: AbortSignal} = {}): Promise<RawResponse> {
    const {signal} = options
    if (signal?.aborted) return Promise.reject(Object.assign(new Error('aborted'), {name: 'AbortError'}))
    return new Promise((resolve, reject) => {
      const onAbort = () => this.socket.destroy(Object.assign(new Error('aborted'), {name: 'AbortError'}))
      signal?.addEventListener('abort', onAbort, {once: true})
      const done = () => signal?.removeEventListener('abort', onAbort)
      this.exchange = {
        resolve: response => {
          done()
          resolve(response)
        },
        reject: error => {
          done()
          reject(error)
        },
        onBody: options.onBody,
        status: 0,
        headers: {},
        parts: [],
      }
      this.socket.ref()
      this.socket.write(bytes)
    })
  }

  /** Lets the process exit while this idle connection stays open (for a pool). */
  idle(): void {
    this.socket.unref()
  }

  close(): void {
    this.socket.destroy()
  }

  private fail(error: Error): void {
    const exchange = this.exchange
    this.exchange = undefined
    this.ended = true
    exchange?.reject(error)
  }
}
