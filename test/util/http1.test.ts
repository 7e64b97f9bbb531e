import {expect} from 'chai'
import {execFileSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {createServer as createTlsServer} from 'node:tls'
import {type Server, createServer as createHttpServer} from 'node:http'
import {type AddressInfo, type Socket, createServer as createTcpServer} from 'node:net'

import {UnavailableError} from '../../src/errors.js'
import {HttpStatusError, rangeRequest} from '../../src/store/http.js'
import {isTransient} from '../../src/util/retry.js'
import {tempDir} from '../helpers/stores.js'
import {Http1Connection, requestBytes} from '../../src/util/http1.js'
import {loadTest} from '../../src/predict/load.js'

/** A raw TCP server answering every request with `reply(n)` bytes, written in pieces to split the parser's input. */
async function rawServer(
  reply: (n: number, socket: Socket) => void,
): Promise<{url: string; server: ReturnType<typeof createTcpServer>; connections: () => number}> {
  let requests = 0
  let connections = 0
  const server = createTcpServer(socket => {
    connections++
    let buffered = ''
    socket.on('data', chunk => {
      buffered += chunk.toString('latin1')
      // Each request is a head plus a body of content-length bytes.
      for (;;) {
        const headEnd = buffered.indexOf('\r\n\r\n')
        if (headEnd < 0) return
        const length = Number(/content-length: (\d+)/i.exec(buffered.slice(0, headEnd))?.[1] ?? 0)
        if (buffered.length < headEnd + 4 + length) return
        buffered = buffered.slice(headEnd + 4 + length)
        reply(requests++, socket)
      }
    })
    socket.on('error', () => socket.destroy())
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => resolve()))
  return {url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, connections: () => connections}
}

function writeInPieces(socket: Socket, text: string, size = 7): void {
  for (let i = 0; i < text.length; i += size) socket.write(text.slice(i, i + size))
}

const body = Buffer.from('{"data":[[1,2,3,4]]}')

describe('our HTTP/1.1 client (predict -n, ranged reads) and the load generator against real sockets', () => {
  const servers: Array<{close(): unknown}> = []
  afterEach(() => {
    for (const server of servers.splice(0)) server.close()
  })

  it('parses content-length responses split across packets, on one keep-alive connection', async () => {
    const raw = await rawServer((n, socket) =>
      writeInPieces(socket, `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${String(n).length + 2}\r\n\r\n[${n}]`),
    )
    servers.push(raw.server)
    const url = new URL('/predict', raw.url)
    const connection = await Http1Connection.open(url)
    const wire = requestBytes('POST', url, {'content-type': 'application/json'}, body)
    for (let i = 0; i < 3; i++) {
      const response = await connection.send(wire)
      expect(response.status).to.equal(200)
      expect(response.body.toString()).to.equal(`[${i}]`)
    }

    connection.close()
    expect(raw.connections()).to.equal(1)
  })

  it('decodes chunked bodies (with trailers too) and 204 with no body', async () => {
    const raw = await rawServer((n, socket) => {
      if (n === 0) writeInPieces(socket, 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n', 3)
      else if (n === 1) writeInPieces(socket, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-trailer: 1\r\n\r\n')
      else socket.write('HTTP/1.1 204 No Content\r\n\r\n')
    })
    servers.push(raw.server)
    const url = new URL('/', raw.url)
    const connection = await Http1Connection.open(url)
    const wire = requestBytes('POST', url, {}, body)
    expect((await connection.send(wire)).body.toString()).to.equal('hello world')
    expect((await connection.send(wire)).body.toString()).to.equal('ok')
    expect(await connection.send(wire)).to.deep.include({status: 204})
    connection.close()
  })

  it('a body without length runs to the end of the connection; Connection: close is not reused', async () => {
    const raw = await rawServer((n, socket) => {
      if (n === 0) {
        socket.end('HTTP/1.0 200 OK\r\n\r\nuntil close')
      } else {
        socket.write('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok')
        socket.end()
      }
    })
    servers.push(raw.server)
    const url = new URL('/', raw.url)
    const first = await Http1Connection.open(url)
    expect((await first.send(requestBytes('POST', url, {}, body))).body.toString()).to.equal('until close')
    expect(first.reusable).to.equal(false)
    const second = await Http1Connection.open(url)
    expect((await second.send(requestBytes('POST', url, {}, body))).body.toString()).to.equal('ok')
    expect(second.reusable).to.equal(false)
  })

  it('loadTest reopens connections the server closes and counts every request once', async () => {
    const raw = await rawServer((n, socket) => {
      const answer = '{"prediction":"virginica"}'
      socket.write(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n${n % 5 === 4 ? 'connection: close\r\n' : ''}content-length: ${answer.length}\r\n\r\n${answer}`,
      )
      if (n % 5 === 4) socket.end()
    })
    servers.push(raw.server)
    const report = await loadTest({url: raw.url, endpoint: '/predict/label', protocol: 'original', rows: [[1, 2, 3, 4]]}, 200, 4)
    expect(report).to.include({requests: 200, errors: 0})
    expect(report.last?.body).to.deep.equal({prediction: 'virginica'})
    expect(raw.connections()).to.be.greaterThan(4)
  })

  it('loadTest counts 5xx answers and connections reset mid-request as errors', async () => {
    const raw = await rawServer((n, socket) => {
      if (n === 3) socket.destroy()
      else if (n % 2 === 0) socket.write('HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\n\r\n{}')
      else socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}')
    })
    servers.push(raw.server)
    const report = await loadTest({url: raw.url, endpoint: '/predict/label', protocol: 'original', rows: [[1, 2, 3, 4]]}, 10, 1)
    expect(report.requests).to.equal(10)
    // n = 0, 2, 4, 6, 8 answer 500 and n = 3 is reset: 6 of 10.
    expect(report.errors).to.equal(6)
  })

  it('bad input: an unreachable server → UnavailableError (exit 7), not a hang', async () => {
    const http: Server = createHttpServer()
    await new Promise<void>(resolve => http.listen(0, '127.0.0.1', () => resolve()))
    const {port} = http.address() as AddressInfo
    await new Promise(resolve => http.close(resolve))
    const failed = await loadTest(
      {url: `http://127.0.0.1:${port}`, endpoint: '/predict/label', protocol: 'original', rows: [[1, 2, 3, 4]]},
      20,
      4,
    ).then(
      () => undefined,
      (error: unknown) => error,
    )
    expect(failed).to.be.instanceOf(UnavailableError)
    expect((failed as Error).message).to.match(/cannot reach http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/)
  })
})

describe('ranged reads on our own connections (src/store/http.ts rangeRequest) against real sockets', () => {
  const servers: Array<{close(): unknown}> = []
  afterEach(() => {
    for (const server of servers.splice(0)) server.close()
  })

  const collect = async (url: string, signal?: AbortSignal) => {
    const parts: Buffer[] = []
    // Copies, as the contract says: a chunk is only valid during the call.
    await rangeRequest({
      url: new URL('/o?alt=media', url),
      headers: {range: 'bytes=0-9'},
      signal,
      onData: chunk => parts.push(Buffer.from(chunk)),
    })
    return Buffer.concat(parts).toString()
  }

  it('content-length and chunked bodies arrive whole; two reads reuse one keep-alive connection', async () => {
    const raw = await rawServer((n, socket) => {
      if (n === 0) writeInPieces(socket, 'HTTP/1.1 206 Partial Content\r\ncontent-length: 10\r\n\r\n0123456789', 3)
      else
        writeInPieces(socket, 'HTTP/1.1 206 Partial Content\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n6\r\nefghij\r\n0\r\n\r\n', 5)
    })
    servers.push(raw.server)
    expect(await collect(raw.url)).to.equal('0123456789')
    expect(await collect(raw.url)).to.equal('abcdefghij')
    expect(raw.connections()).to.equal(1)
  })

  it("bad input: a 404 with a JSON error → HttpStatusError 404 carrying the server's message", async () => {
    const raw = await rawServer((_n, socket) =>
      socket.write(
        'HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 42\r\n\r\n{"error":{"message":"No such object: b/o"}}'.replace(
          '42',
          String('{"error":{"message":"No such object: b/o"}}'.length),
        ),
      ),
    )
    servers.push(raw.server)
    const failed = await collect(raw.url).then(
      () => undefined,
      (error: unknown) => error,
    )
    expect(failed).to.be.instanceOf(HttpStatusError)
    expect(failed).to.include({code: 404, message: 'HTTP 404: No such object: b/o'})
  })

  it('bad input: the server resets in the middle of the body → a transient error (retried by the store), the connection dropped', async () => {
    const raw = await rawServer((n, socket) => {
      if (n === 0) {
        socket.write('HTTP/1.1 206 Partial Content\r\ncontent-length: 10\r\n\r\n01234')
        setTimeout(() => socket.destroy(), 20)
      } else {
        socket.write('HTTP/1.1 206 Partial Content\r\ncontent-length: 10\r\n\r\n0123456789')
      }
    })
    servers.push(raw.server)
    const failed = await collect(raw.url).then(
      () => undefined,
      (error: unknown) => error,
    )
    expect(isTransient(failed)).to.equal(true)
    expect(await collect(raw.url)).to.equal('0123456789')
    expect(raw.connections()).to.equal(2)
  })

  it('an abort in the middle of the body rejects at once (AbortError) and the connection is not reused', async () => {
    const raw = await rawServer((n, socket) => {
      if (n === 0) socket.write('HTTP/1.1 206 Partial Content\r\ncontent-length: 10\r\n\r\n012')
      else socket.write('HTTP/1.1 206 Partial Content\r\ncontent-length: 10\r\n\r\n0123456789')
    })
    servers.push(raw.server)
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 50)
    const failed = await collect(raw.url, controller.signal).then(
      () => undefined,
      (error: unknown) => error,
    )
    expect(failed).to.have.property('name', 'AbortError')
    expect(await collect(raw.url)).to.equal('0123456789')
    expect(raw.connections()).to.equal(2)
  })
})

describe('our HTTP/1.1 client over TLS (the path to storage.googleapis.com)', () => {
  it('reads into its reused buffer through TLS as well: a 1 MiB body arrives intact, twice on one connection', async () => {
    const dir = tempDir()
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      {stdio: 'ignore'},
    )
    const cert = readFileSync(join(dir, 'cert.pem'))
    const payload = randomBytes(1 << 20)
    let connections = 0
    const server = createTlsServer({key: readFileSync(join(dir, 'key.pem')), cert}, socket => {
      connections++
      let buffered = ''
      socket.on('data', chunk => {
        buffered += chunk.toString('latin1')
        while (buffered.includes('\r\n\r\n')) {
          buffered = buffered.slice(buffered.indexOf('\r\n\r\n') + 4)
          socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${payload.length}\r\n\r\n`)
          socket.write(payload)
        }
      })
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => resolve()))
    try {
      const url = new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}/o`)
      const connection = await Http1Connection.open(url, {ca: cert})
      for (let i = 0; i < 2; i++) {
        const parts: Buffer[] = []
        const response = await connection.send(requestBytes('GET', url, {}), {onBody: chunk => parts.push(Buffer.from(chunk))})
        expect(response.status).to.equal(200)
        expect(Buffer.concat(parts).equals(payload)).to.equal(true)
      }

      connection.close()
      expect(connections).to.equal(1)
      // Without our CA the certificate is refused: TLS is verified, not skipped.
      const refused = await Http1Connection.open(url).then(
        () => undefined,
        (error: unknown) => error,
      )
      expect(refused)
        .to.have.property('code')
        .that.matches(/SELF_SIGNED|UNABLE_TO_VERIFY|DEPTH_ZERO/)
    } finally {
      server.close()
    }
  })
})
