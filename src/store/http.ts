import {Agent as HttpAgent, type IncomingMessage, request as httpRequest} from 'node:http'
import {Agent as HttpsAgent, request as httpsRequest} from 'node:https'
import type {Readable} from 'node:stream'

const agents = {
  'http:': new HttpAgent({keepAlive: true}),
  'https:': new HttpsAgent({keepAlive: true}),
}

/** An HTTP error carrying the status as `code`, like the storage library's ApiError. */
export class HttpStatusError extends Error {
  constructor(readonly code: number, message: string) {
    super(message)
  }
}

export interface StreamRequest {
  method: 'GET' | 'POST' | 'PUT'
  url: URL
  headers: Record<string, number | string>
  /** Request body, streamed or whole. */
  body?: Buffer | Readable
  signal?: AbortSignal
  /** Receives a 2xx response body chunk by chunk; without it the body is returned. */
  onData?: (chunk: Buffer) => void
}

/**
 * One streamed HTTP exchange on a keep-alive connection, for bulk object
 * data: no buffering of the whole body, and a non-2xx status becomes an
 * HttpStatusError with the server's message.
 */
export async function streamRequest(options: StreamRequest): Promise<{status: number; body: Buffer; headers: IncomingMessage['headers']}> {
  const send = options.url.protocol === 'https:' ? httpsRequest : httpRequest
  const agent = agents[options.url.protocol as keyof typeof agents]
  return new Promise((resolve, reject) => {
    const req = send(options.url, {method: options.method, headers: options.headers, agent, signal: options.signal}, (response: IncomingMessage) => {
      const status = response.statusCode ?? 0
      const ok = status >= 200 && status < 300
      const parts: Buffer[] = []
      response.on('data', (chunk: Buffer) => {
        if (ok && options.onData) {
          try {
            options.onData(chunk)
          } catch (error) {
            response.destroy(error as Error)
          }
        } else {
          parts.push(chunk)
        }
      })
      response.on('error', reject)
      response.on('aborted', () => reject(Object.assign(new Error('connection closed before the response ended'), {code: 'ECONNRESET'})))
      response.on('end', () => {
        if (!response.complete) {
          reject(Object.assign(new Error('connection closed before the response ended'), {code: 'ECONNRESET'}))
          return
        }

        const body = Buffer.concat(parts)
        if (ok) resolve({status, body, headers: response.headers})
        else reject(new HttpStatusError(status, `HTTP ${status}: ${errorText(body)}`))
      })
    })
    req.on('error', reject)
    const {body} = options
    if (body === undefined || Buffer.isBuffer(body)) {
      req.end(body)
    } else {
      body.on('error', (error: Error) => req.destroy(error))
      body.pipe(req)
    }
  })
}

function errorText(body: Buffer): string {
  const text = body.toString('utf8')
  try {
    const parsed = JSON.parse(text) as {error?: {message?: string}}
    if (parsed.error?.message) return parsed.error.message
  } catch {
    // not JSON: the text itself
  }

  return text.split('\n')[0].slice(0, 200) || 'no message'
}
