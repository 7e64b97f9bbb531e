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
 * How many request-body bytes one server process may have in flight at
 * once: sized from its share of the memory limit (the limit over the
 * workers) so that a burst of large requests gets 503 + Retry-After
 * instead of an OOM kill. At least one largest body always fits.
 */
export function inFlightBudget(bodyLimit: number, memoryLimit = containerMemoryLimit(), workers = 1): number {
  const budget = memoryLimit === undefined ? DEFAULT_BUDGET : Math.floor((memoryLimit / workers - BASELINE) / AMPLIFICATION)
  return Math.max(bodyLimit, budget)
}

/** The container's CPU quota in CPUs (cgroup v2, then v1), or undefined when there is none. */
export function containerCpuQuota(): number | undefined {
  const read = (file: string) => {
    try {
      return readFileSync(file, 'utf8')
    } catch {
      return undefined
    }
  }

  return parseCpuQuota({
    cpuMax: read('/sys/fs/cgroup/cpu.max'),
    cfsQuotaUs: read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'),
    cfsPeriodUs: read('/sys/fs/cgroup/cpu/cpu.cfs_period_us'),
  })
}

/**
 * CPUs a cgroup quota allows: v2 `cpu.max` ("max 100000": none; "200000 100000": 2), else v1
 * `cpu.cfs_quota_us` over `cpu.cfs_period_us` (a quota of -1: none). Undefined without a quota
 * or on text that is not one.
 */
export function parseCpuQuota(files: {cpuMax?: string; cfsQuotaUs?: string; cfsPeriodUs?: string}): number | undefined {
  const ratio = (quota: string | undefined, period: string | undefined) => {
    if (quota === undefined || !/^\d+$/.test(quota.trim())) return undefined
    const periodUs = period === undefined ? 100_000 : Number(period.trim())
    const cpus = Number(quota.trim()) / periodUs
    return Number.isFinite(cpus) && cpus > 0 ? cpus : undefined
  }

  if (files.cpuMax !== undefined) {
    const [quota, period] = files.cpuMax.trim().split(/\s+/)
    return ratio(quota, period)
  }

  return ratio(files.cfsQuotaUs, files.cfsPeriodUs)
}

/**
 * How many serve workers by default: one per CPU of the container's quota (rounded up), else
 * one per core this process may run on; never more than the memory limit holds at about
 * 2 × the model's size + 200 MiB each (a Deployment with a memory limit and no CPU limit on a
 * large node would otherwise be OOM-killed); at least 1.
 */
export function defaultWorkerCount(options: {cpuQuota?: number; cores: number; memoryLimit?: number; modelBytes: number}): number {
  const cpus = Math.min(options.cpuQuota === undefined ? options.cores : Math.ceil(options.cpuQuota), options.cores)
  const fit = options.memoryLimit === undefined ? cpus : Math.floor(options.memoryLimit / (BASELINE + 2 * options.modelBytes))
  return Math.max(1, Math.min(cpus, fit))
}
