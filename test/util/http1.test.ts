import {expect} from 'chai'
import {type Server, createServer as createHttpServer} from 'node:http'
import {type AddressInfo, type Socket, createServer as createTcpServer} from 'node:net'

import {UnavailableError} from '../../src/errors.js'
import {Http1Connection, requestBytes} from '../../src/util/http1.js'
import {loadTest} from '../../src/predict/load.js'

/** A raw TCP server answering every request with `reply(n)` bytes, written in pieces to split the parser's input. */
async function rawServer(reply: (n: number, socket: Socket) => void): Promise<{url: string; server: ReturnType<typeof createTcpServer>; connections: () => number}> {
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

describe('the load generator\'s HTTP/1.1 client (predict -n) against real sockets', () => {
  const servers: Array<{close(): unknown}> = []
  afterEach(() => {
    for (const server of servers.splice(0)) server.close()
  })

  it('parses content-length responses split across packets, on one keep-alive connection', async () => {
    const raw = await rawServer((n, socket) => writeInPieces(socket, `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${String(n).length + 2}\r\n\r\n[${n}]`))
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
      socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n${n % 5 === 4 ? 'connection: close\r\n' : ''}content-length: ${answer.length}\r\n\r\n${answer}`)
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
    const failed = await loadTest({url: `http://127.0.0.1:${port}`, endpoint: '/predict/label', protocol: 'original', rows: [[1, 2, 3, 4]]}, 20, 4).then(() => undefined, (error: unknown) => error)
    expect(failed).to.be.instanceOf(UnavailableError)
    expect((failed as Error).message).to.match(/cannot reach http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/)
  })
})
