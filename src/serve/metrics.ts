import {SHADOW_RESULTS, type ShadowResult} from './shadow.js'

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
  /** Mirrored requests by result, and the candidate's latency (serve/shadow.ts); absent without a shadow. */
  shadow?: {results: Array<[string, number]>; latency: Histogram; on: number; off: number}
}

function emptyHistogram(): Histogram {
  return {counts: BUCKETS.map(() => 0), sum: 0, count: 0}
}

function addHistograms(a: Histogram, b: Histogram): Histogram {
  return {counts: a.counts.map((c, i) => c + b.counts[i]), sum: a.sum + b.sum, count: a.count + b.count}
}

function observeInto(histogram: Histogram, seconds: number): void {
  for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]) histogram.counts[i]++
  histogram.sum += seconds
  histogram.count++
}

function sumEntries(into: Map<string, number>, entries: Array<[string, number]>): void {
  for (const [key, value] of entries) into.set(key, (into.get(key) ?? 0) + value)
}

/** The pod's counters: every worker's summed (histograms bucket by bucket); ready when every worker is. */
export function sumCounters(parts: Counters[]): Counters {
  const requests = new Map<string, number>()
  const latency = new Map<string, Histogram>()
  const shadowResults = new Map<string, number>()
  let shadowLatency: Histogram | undefined
  const workers = {on: 0, off: 0}
  for (const part of parts) {
    sumEntries(requests, part.requests)
    for (const [key, h] of part.latency) latency.set(key, addHistograms(latency.get(key) ?? emptyHistogram(), h))
    if (part.shadow) {
      sumEntries(shadowResults, part.shadow.results)
      shadowLatency = addHistograms(shadowLatency ?? emptyHistogram(), part.shadow.latency)
      workers.on += part.shadow.on
      workers.off += part.shadow.off
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
    ...(shadowLatency && {shadow: {results: [...shadowResults], latency: shadowLatency, ...workers}}),
  }
}

export class Metrics {
  private readonly requests = new Map<string, number>()
  private readonly latency = new Map<string, Histogram>()
  private readonly info: Record<string, string>
  private shadow?: {results: Map<string, number>; latency: Histogram; on: boolean}
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
      histogram = emptyHistogram()
      this.latency.set(histogramKey, histogram)
    }

    observeInto(histogram, seconds)
  }

  /** A shadow is configured (now or once its config file says so): every result is reported, from 0. */
  enableShadow(): void {
    this.shadow ??= {results: new Map(SHADOW_RESULTS.map(result => [result, 0])), latency: emptyHistogram(), on: false}
  }

  /** Whether this process mirrors now (a target is set). */
  shadowOn(on: boolean): void {
    if (this.shadow) this.shadow.on = on
  }

  shadowResult(result: ShadowResult): void {
    this.shadow?.results.set(result, (this.shadow.results.get(result) ?? 0) + 1)
  }

  /** How long the candidate took to answer a mirrored request in full. */
  shadowLatency(seconds: number): void {
    if (this.shadow) observeInto(this.shadow.latency, seconds)
  }

  counters(): Counters {
    return {
      ready: this.ready,
      requests: [...this.requests],
      latency: [...this.latency],
      ...(this.inflight && {inflight: {...this.inflight}}),
      ...(this.shadow && {
        shadow: {
          results: [...this.shadow.results],
          latency: {...this.shadow.latency, counts: [...this.shadow.latency.counts]},
          on: this.shadow.on ? 1 : 0,
          off: this.shadow.on ? 0 : 1,
        },
      }),
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
    for (const [labels, h] of counters.latency) lines.push(...histogramLines('mlops_http_request_duration_seconds', labels, h))

    if (counters.inflight)
      lines.push(
        '# HELP mlops_inflight_request_bytes_peak The most request bytes admitted at once (over the limit: 503 + Retry-After).',
        '# TYPE mlops_inflight_request_bytes_peak gauge',
        `mlops_inflight_request_bytes_peak ${counters.inflight.peak}`,
        '# HELP mlops_inflight_request_bytes_limit The request bytes admitted at once at most (--max-inflight-bytes).',
        '# TYPE mlops_inflight_request_bytes_limit gauge',
        `mlops_inflight_request_bytes_limit ${counters.inflight.limit}`,
      )
    if (counters.shadow)
      lines.push(
        '# HELP mlops_shadow_requests_total Prediction requests mirrored to the shadow candidate, by result (agree, disagree, error, timeout, dropped: the queue was full).',
        '# TYPE mlops_shadow_requests_total counter',
        ...counters.shadow.results.map(([result, value]) => `mlops_shadow_requests_total{result="${result}"} ${value}`),
        '# HELP mlops_shadow_request_duration_seconds How long the shadow candidate took to answer a mirrored request in full.',
        '# TYPE mlops_shadow_request_duration_seconds histogram',
        ...histogramLines('mlops_shadow_request_duration_seconds', '', counters.shadow.latency),
        '# HELP mlops_shadow_workers Server processes by whether they mirror now (on: a candidate is set; off: none, or the config file says none).',
        '# TYPE mlops_shadow_workers gauge',
        `mlops_shadow_workers{state="on"} ${counters.shadow.on}`,
        `mlops_shadow_workers{state="off"} ${counters.shadow.off}`,
      )
    return `${lines.join('\n')}\n`
  }
}

/** A histogram's bucket, sum and count lines; `labels` go before `le` (none: only `le`). */
function histogramLines(name: string, labels: string, h: Histogram): string[] {
  const prefix = labels ? `${labels},` : ''
  const braces = labels ? `{${labels}}` : ''
  return [
    ...BUCKETS.map((bound, i) => `${name}_bucket{${prefix}le="${bound}"} ${h.counts[i]}`),
    `${name}_bucket{${prefix}le="+Inf"} ${h.count}`,
    `${name}_sum${braces} ${h.sum}`,
    `${name}_count${braces} ${h.count}`,
  ]
}

function escape(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')
}
