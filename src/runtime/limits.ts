import {readFileSync} from 'node:fs'

/** The container's memory limit in bytes (cgroup v2, then v1), or undefined when there is none. */
export function containerMemoryLimit(): number | undefined {
  for (const [file, parse] of [
    ['/sys/fs/cgroup/memory.max', (text: string) => (text === 'max' ? undefined : Number(text))],
    ['/sys/fs/cgroup/memory/memory.limit_in_bytes', (text: string) => Number(text)],
  ] as const) {
    try {
      const limit = parse(readFileSync(file, 'utf8').trim())
      // cgroup v1 says "no limit" with a number near 2^63.
      if (limit !== undefined && Number.isFinite(limit) && limit > 0 && limit < 2 ** 50) return limit
      if (limit === undefined || limit >= 2 ** 50) return undefined
    } catch {
      // not this cgroup version
    }
  }

  return undefined
}

/** What the server keeps for itself (Node, the runtime, the model's session), before any request. */
const BASELINE = 200 << 20
/** Bytes of memory one byte of JSON request body costs while it is parsed, run and answered (measured: about 37). */
const AMPLIFICATION = 40
const DEFAULT_BUDGET = 32 << 20

/**
 * How many request-body bytes may be in flight at once: sized from the
 * memory limit so that a burst of large requests gets 503 + Retry-After
 * instead of an OOM kill. At least one largest body always fits.
 */
export function inFlightBudget(bodyLimit: number, memoryLimit = containerMemoryLimit()): number {
  const budget = memoryLimit === undefined ? DEFAULT_BUDGET : Math.floor((memoryLimit - BASELINE) / AMPLIFICATION)
  return Math.max(bodyLimit, budget)
}
