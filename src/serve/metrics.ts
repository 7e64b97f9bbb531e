/** Prometheus text exposition for the model server, without a client library: a few counters and one histogram. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

interface Histogram {
  counts: number[]
  sum: number
  count: number
}

/** One process's counters, as they cross to the primary to be summed with the other workers'. */
export interface Counters {
  ready: boolean
  requests: Array<[string, number]>
  latency: Array<[string, Histogram]>
  /** Request bytes admitted at once: the most so far, and the limit (--max-inflight-bytes). */
  inflight?: {peak: number; limit: number}
}

/** The pod's counters: every worker's summed (histograms bucket by bucket); ready when every worker is. */
export function sumCounters(parts: Counters[]): Counters {
  const requests = new Map<string, number>()
  const latency = new Map<string, Histogram>()
  for (const part of parts) {
    for (const [key, value] of part.requests) requests.set(key, (requests.get(key) ?? 0) + value)
    for (const [key, h] of part.latency) {
      const total = latency.get(key) ?? {counts: BUCKETS.map(() => 0), sum: 0, count: 0}
      latency.set(key, {counts: total.counts.map((c, i) => c + h.counts[i]), sum: total.sum + h.sum, count: total.count + h.count})
    }
  }

  // Each worker admits against its own limit: the pod's figures are the sums.
  const inflight = parts.some(part => part.inflight)
    ? parts.reduce((sum, part) => ({peak: sum.peak + (part.inflight?.peak ?? 0), limit: sum.limit + (part.inflight?.limit ?? 0)}), {
        peak: 0,
        limit: 0,
      })
    : undefined
  return {
    ready: parts.length > 0 && parts.every(part => part.ready),
    requests: [...requests],
    latency: [...latency],
    ...(inflight && {inflight}),
  }
}

export class Metrics {
  private readonly requests = new Map<string, number>()
  private readonly latency = new Map<string, Histogram>()
  private readonly info: Record<string, string>
  ready = false
  inflight?: {peak: number; limit: number}

  constructor(model: {name: string; version?: string; sha256: string}) {
    this.info = {name: model.name, version: model.version ?? '', sha256: model.sha256}
  }

  observe(route: string, method: string, status: number, seconds: number): void {
    const key = `route="${escape(route)}",method="${method}",status="${status}"`
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1)
    const histogramKey = `route="${escape(route)}"`
    let histogram = this.latency.get(histogramKey)
    if (!histogram) {
      histogram = {counts: BUCKETS.map(() => 0), sum: 0, count: 0}
      this.latency.set(histogramKey, histogram)
    }

    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]) histogram.counts[i]++
    histogram.sum += seconds
    histogram.count++
  }

  counters(): Counters {
    return {
      ready: this.ready,
      requests: [...this.requests],
      latency: [...this.latency],
      ...(this.inflight && {inflight: {...this.inflight}}),
    }
  }

  /** This process's counters, or the pod's when given (several workers). */
  render(counters: Counters = this.counters()): string {
    const lines = [
      '# HELP mlops_model_info The model this server serves.',
      '# TYPE mlops_model_info gauge',
      `mlops_model_info{${Object.entries(this.info)
        .map(([k, v]) => `${k}="${escape(v)}"`)
        .join(',')}} 1`,
      '# HELP mlops_model_ready 1 once the model is loaded and a warm-up inference succeeded.',
      '# TYPE mlops_model_ready gauge',
      `mlops_model_ready ${counters.ready ? 1 : 0}`,
      '# HELP mlops_http_requests_total HTTP requests by route, method and status.',
      '# TYPE mlops_http_requests_total counter',
      ...counters.requests.map(([labels, value]) => `mlops_http_requests_total{${labels}} ${value}`),
      '# HELP mlops_http_request_duration_seconds HTTP request latency by route.',
      '# TYPE mlops_http_request_duration_seconds histogram',
    ]
    for (const [labels, h] of counters.latency) {
      BUCKETS.forEach((bound, i) => lines.push(`mlops_http_request_duration_seconds_bucket{${labels},le="${bound}"} ${h.counts[i]}`))
      lines.push(
        `mlops_http_request_duration_seconds_bucket{${labels},le="+Inf"} ${h.count}`,
        `mlops_http_request_duration_seconds_sum{${labels}} ${h.sum}`,
        `mlops_http_request_duration_seconds_count{${labels}} ${h.count}`,
      )
    }

    if (counters.inflight)
      lines.push(
        '# HELP mlops_inflight_request_bytes_peak The most request bytes admitted at once (over the limit: 503 + Retry-After).',
        '# TYPE mlops_inflight_request_bytes_peak gauge',
        `mlops_inflight_request_bytes_peak ${counters.inflight.peak}`,
        '# HELP mlops_inflight_request_bytes_limit The request bytes admitted at once at most (--max-inflight-bytes).',
        '# TYPE mlops_inflight_request_bytes_limit gauge',
        `mlops_inflight_request_bytes_limit ${counters.inflight.limit}`,
      )
    return `${lines.join('\n')}\n`
  }
}

function escape(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')
}
