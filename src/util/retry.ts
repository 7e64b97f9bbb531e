import {setTimeout as sleep} from 'node:timers/promises'

import {UnavailableError, errorMessage} from '../errors.js'

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'STALLED',
])

/** A failure worth another attempt: the network, a stall, HTTP 408/429/5xx. */
export function isTransient(error: unknown): boolean {
  for (let e: unknown = error; e; e = (e as {cause?: unknown}).cause) {
    const {code, status} = e as {code?: unknown; status?: unknown}
    const httpStatus = typeof code === 'number' ? code : typeof status === 'number' ? status : undefined
    if (httpStatus !== undefined) return httpStatus === 408 || httpStatus === 429 || httpStatus >= 500
    if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true
    const message = errorMessage(e).toLowerCase()
    if (/socket hang up|econnreset|econnrefused|premature close|fetch failed|other side closed|network/.test(message)) return true
  }

  return false
}

export interface RetryOptions {
  /** How long to keep trying, from the first attempt. */
  timeoutMs: number
  /** What was being done, for the final message ("reading gs://b/x"). */
  what: string
  initialDelayMs?: number
  maxDelayMs?: number
  /** How to wait between attempts (tests record the waits instead of taking them). */
  sleep?: (ms: number) => Promise<unknown>
}

/**
 * Runs `attempt` until it succeeds, fails with a non-transient error, or the
 * retry window closes; then throws UnavailableError (exit 7) naming what
 * failed, the last cause, and how long it tried.
 */
export async function withRetry<T>(attempt: (n: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const started = Date.now()
  let delay = options.initialDelayMs ?? 100
  for (let n = 1; ; n++) {
    try {
      return await attempt(n)
    } catch (error) {
      if (!isTransient(error)) throw error
      const elapsed = Date.now() - started
      if (elapsed >= options.timeoutMs) {
        throw new UnavailableError(
          `${options.what}: ${describeCause(error)} (gave up after ${n} attempt${n === 1 ? '' : 's'} in ${(elapsed / 1000).toFixed(1)}s)`,
          {
            cause: error,
            suggestion: 'check that the storage endpoint is reachable; store.timeout (MLOPS_STORE_TIMEOUT) sets how long to keep retrying',
          },
        )
      }

      await (options.sleep ?? sleep)(Math.min(delay * (0.5 + Math.random() / 2), options.timeoutMs - elapsed))
      delay = Math.min(delay * 2, options.maxDelayMs ?? 2000)
    }
  }
}

function describeCause(error: unknown): string {
  const {code} = error as {code?: unknown}
  const message = errorMessage(error).split('\n')[0]
  return typeof code === 'string' && !message.includes(code) ? `${code} ${message}` : message
}
