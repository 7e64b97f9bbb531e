/**
 * The stable's latency at 10% shadow sampling against none, on a real node (kubelet + containerd
 * + runc), with the candidate in its own pod. One stable replica of iris@1 (autoscaling off) and a
 * candidate Deployment iris-shadow made from the live stable's pod template (the same model: every
 * mirrored request agrees), relabelled so that the Service does not select it and without
 * MLOPS_SHADOW_CONFIG (it must not mirror itself). The stable is switched between no shadow
 * (ConfigMap iris-shadow, shadow.json "") and a shadow (shadow.json {"urls": [the candidate pod],
 * "sample": 0.1}) as deploy --shadow does it and test/e2e/shadow.test.ts copies it: the ConfigMap
 * applied, the pod annotated so the kubelet refreshes the volume at once, then the pod's /metrics
 * waited on until mlops_shadow_workers says the new state.
 *
 * Load: autocannon at a fixed rate well below saturation (POST /predict/label, one row) through a
 * kubectl port-forward to the stable pod, rounds alternated (odd rounds off first, even rounds on
 * first). Per round: the client's p50 and p99 (autocannon, through the port-forward), and the
 * stable server's own from its /metrics (mlops_http_request_duration_seconds deltas over the
 * round: the bucket holding the quantile, interpolated linearly inside it as histogram_quantile
 * does; and the mean, sum / count), which leaves out the port-forward. Printed: each round, the
 * medians, the ratios on / off, the share of requests the stable mirrored and how they ended.
 *
 *   npm run build && npx tsx bench/shadow-k8s.ts [--rounds 5] [--seconds 10] [--rate 200] [--connections 16] [--sample 0.1]
 */
import type {V1Deployment, V1Pod} from '@kubernetes/client-node'
import autocannon from 'autocannon'
import {type ChildProcess, spawn} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {stopDockerEngine} from '../test/env/docker.js'
import {stopKubeCluster} from '../test/env/k8s.js'
import {stopRealNode} from '../test/env/node.js'
import {waitFor} from '../test/env/ports.js'
import {KUBECTL, clientsFor, currentPods, isReady, kubectl} from '../test/e2e/cluster.js'
import {realNodeProject} from '../test/e2e/environment.js'
import {tempDir} from '../test/helpers/stores.js'
import {median} from './lib.js'

const {values} = parseArgs({
  options: {
    rounds: {type: 'string', default: '5'},
    seconds: {type: 'string', default: '10'},
    rate: {type: 'string', default: '200'},
    connections: {type: 'string', default: '16'},
    sample: {type: 'string', default: '0.1'},
  },
})
const [rounds, seconds, rate, connections, sampleShare] = [
  values.rounds,
  values.seconds,
  values.rate,
  values.connections,
  values.sample,
].map(Number)
const NAMESPACE = 'bench-shadow-k8s'
const ROUTE = 'route="/predict/label"'
const RESULTS = ['agree', 'disagree', 'error', 'timeout', 'dropped'] as const
const body = JSON.stringify({data: [[6.3, 3.3, 6, 2.5]]})

/** Every sample of a /metrics text: series (name and labels as written) → value. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line)
    if (match) samples.set(match[1], Number(match[2]))
  }

  return samples
}

/** The server's latency histogram of the prediction route: cumulative counts by upper bound (s), sum and count. */
function histogram(samples: Map<string, number>): {buckets: Array<[number, number]>; sum: number; count: number} {
  const buckets: Array<[number, number]> = []
  for (const [series, value] of samples) {
    const match = /^mlops_http_request_duration_seconds_bucket\{(.*),le="([^"]+)"\}$/.exec(series)
    if (match && match[1] === ROUTE) buckets.push([match[2] === '+Inf' ? Infinity : Number(match[2]), value])
  }

  buckets.sort((a, b) => a[0] - b[0])
  return {
    buckets,
    sum: samples.get(`mlops_http_request_duration_seconds_sum{${ROUTE}}`) ?? 0,
    count: samples.get(`mlops_http_request_duration_seconds_count{${ROUTE}}`) ?? 0,
  }
}

/** A quantile of the requests between two readings, in ms: the bucket holding it, and linearly inside it (as histogram_quantile). */
function serverQuantile(before: Map<string, number>, after: Map<string, number>, q: number): {bucket: number; interpolated: number} {
  const [a, b] = [histogram(before), histogram(after)]
  const deltas = b.buckets.map(([bound, count], i) => [bound, count - (a.buckets[i]?.[1] ?? 0)] as const)
  const total = deltas.at(-1)![1]
  const rank = q * total
  let lower = 0
  let below = 0
  for (const [bound, cumulative] of deltas) {
    if (cumulative >= rank) {
      const upper = Number.isFinite(bound) ? bound : lower
      const inside = cumulative - below
      const interpolated = inside > 0 ? lower + ((upper - lower) * (rank - below)) / inside : upper
      return {bucket: upper * 1000, interpolated: interpolated * 1000}
    }

    lower = bound
    below = cumulative
  }

  return {bucket: Number.NaN, interpolated: Number.NaN}
}

const setup = await realNodeProject(NAMESPACE)
const {cluster} = setup
const {core, apps} = clientsFor(cluster.kubeconfig)
let forward: ChildProcess | undefined
try {
  const deployed = await setup.mlops('deploy', '--model', 'iris@1', '--set', 'autoscaling=false')
  if (deployed.code !== 0) throw new Error(`mlops deploy exited ${deployed.code}: ${deployed.stderr}`)
  const pods = (await currentPods({core, apps}, NAMESPACE)).filter(isReady)
  if (pods.length !== 1) throw new Error(`${pods.length} ready stable pods, not 1`)
  const stablePod = pods[0].metadata!.name!

  // The candidate: the live stable's pod template under another name and a track label, no shadow config of its own.
  const live = await apps.readNamespacedDeployment({name: 'iris', namespace: NAMESPACE})
  const template = structuredClone(live.spec!.template)
  const labels = {'app.kubernetes.io/name': 'iris-shadow', 'mlops.io/track': 'shadow'}
  template.metadata = {...template.metadata, labels: {...template.metadata?.labels, ...labels}}
  for (const container of template.spec!.containers) container.env = container.env?.filter(env => env.name !== 'MLOPS_SHADOW_CONFIG')
  const candidateDeployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {name: 'iris-shadow', namespace: NAMESPACE, labels},
    spec: {replicas: 1, selector: {matchLabels: labels}, template},
  }
  await apps.createNamespacedDeployment({namespace: NAMESPACE, body: candidateDeployment})
  let candidate: V1Pod | undefined
  await waitFor(
    async () => {
      candidate = (await core.listNamespacedPod({namespace: NAMESPACE, labelSelector: 'app.kubernetes.io/name=iris-shadow'})).items.find(
        pod => isReady(pod) && pod.status?.podIP,
      )
      return Boolean(candidate)
    },
    'the candidate pod ready',
    180_000,
  )
  const port = candidate!.spec!.containers.find(c => c.name === 'api')!.ports!.find(p => p.name === 'http')!.containerPort
  const candidateUrl = `http://${candidate!.status!.podIP}:${port}`
  const api = template.spec!.containers.find(c => c.name === 'api')!
  const sizing = `${api.resources?.limits?.cpu ?? 'no'} CPU limit, ${api.env?.find(env => env.name === 'MLOPS_WORKERS')?.value ?? 1} worker(s)`

  // The load's way in: a port-forward to the stable pod (not the Service: one pod, the one whose /metrics is read).
  forward = spawn(KUBECTL, ['--kubeconfig', cluster.kubeconfig, '-n', NAMESPACE, 'port-forward', `pod/${stablePod}`, ':http'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let forwardOutput = ''
  forward.stdout!.on('data', chunk => {
    forwardOutput += chunk
  })
  forward.stderr!.on('data', chunk => {
    forwardOutput += chunk
  })
  await waitFor(async () => /Forwarding from 127\.0\.0\.1:\d+/.test(forwardOutput), `kubectl port-forward to ${stablePod}`, 15_000)
  const url = `http://127.0.0.1:${/Forwarding from 127\.0\.0\.1:(\d+)/.exec(forwardOutput)![1]}`
  const metrics = async () => parseMetrics(await (await fetch(`${url}/metrics`)).text())

  let generation = 0
  /** What deploy --shadow writes (shadow.json: "" is none), then the pod nudged and its servers waited on. */
  const shadow = async (on: boolean) => {
    const file = join(tempDir('mlops-bench-shadow-'), 'cm.json')
    const config = on ? JSON.stringify({urls: [candidateUrl], sample: sampleShare}) : ''
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {name: 'iris-shadow', namespace: NAMESPACE},
        data: {'shadow.json': config},
      }),
    )
    kubectl(cluster.kubeconfig, ['apply', '-f', file])
    kubectl(cluster.kubeconfig, [
      '-n',
      NAMESPACE,
      'annotate',
      '--overwrite',
      `pod/${stablePod}`,
      `mlops.io/shadow-config=bench-${++generation}`,
    ])
    await waitFor(
      async () => {
        const samples = await metrics()
        const [workersOn, workersOff] = ['on', 'off'].map(state => samples.get(`mlops_shadow_workers{state="${state}"}`) ?? -1)
        return on ? workersOn > 0 && workersOff === 0 : workersOn === 0
      },
      `the stable's servers ${on ? 'mirroring' : 'not mirroring'}`,
      90_000,
    )
  }

  const load = async (duration: number, overallRate?: number) =>
    autocannon({
      url: `${url}/predict/label`,
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body,
      connections,
      pipelining: 1,
      duration,
      ...(overallRate && {overallRate}),
    })

  // What the way in carries: closed loop (the port-forward and the stable together), so the fixed rate can be set well below it.
  await shadow(false)
  await load(2, rate)
  const capacity = await load(3)
  interface Round {
    round: number
    shadow: boolean
    rps: number
    clientP50: number
    clientP99: number
    serverP50: number
    serverP99: number
    serverP99Bucket: number
    serverMean: number
    requests: number
    mirrored: Record<string, number>
    failures: number
  }
  const measured: Round[] = []
  for (let round = 1; round <= rounds; round++) {
    for (const on of round % 2 === 1 ? [false, true] : [true, false]) {
      await shadow(on)
      const before = await metrics()
      const result = await load(seconds, rate)
      // The last mirrored requests (fire-and-forget, a few ms each) end before they are counted.
      await new Promise(resolve => {
        setTimeout(resolve, 500)
      })
      const after = await metrics()
      const delta = (series: string) => (after.get(series) ?? 0) - (before.get(series) ?? 0)
      const [h0, h1] = [histogram(before), histogram(after)]
      measured.push({
        round,
        shadow: on,
        rps: result.requests.average,
        clientP50: result.latency.p50,
        clientP99: result.latency.p99,
        serverP50: serverQuantile(before, after, 0.5).interpolated,
        serverP99: serverQuantile(before, after, 0.99).interpolated,
        serverP99Bucket: serverQuantile(before, after, 0.99).bucket,
        serverMean: ((h1.sum - h0.sum) / (h1.count - h0.count)) * 1000,
        requests: h1.count - h0.count,
        mirrored: Object.fromEntries(RESULTS.map(r => [r, delta(`mlops_shadow_requests_total{result="${r}"}`)])),
        failures: result.errors + result.non2xx + result.timeouts,
      })
    }
  }

  const ms = (value: number) => `${value.toFixed(2)} ms`
  const drawn = (r: Round) => RESULTS.reduce((sum, result) => sum + r.mirrored[result], 0)
  console.log(
    `real node: kubelet v1.36.3, containerd 2.2.9, runc, 2 cores shared by the stable pod, the candidate pod, kubectl port-forward and autocannon; ` +
      `one stable replica (${sizing}), the candidate in its own pod (the same) on the same node; ` +
      `${rate} req/s with ${connections} connections for ${seconds} s per round, ${rounds} rounds alternated; sample ${sampleShare}`,
  )
  console.log(
    `the way in, closed loop for 3 s (port-forward + stable, no shadow): ${capacity.requests.average.toFixed(0)} req/s, p99 ${capacity.latency.p99} ms`,
  )
  console.log(
    '\n| round | shadow | req/s | client p50 | client p99 | server p50 | server p99 (bucket ≤) | server mean | requests | mirrored (agree / other) | failed requests |',
  )
  console.log('|---|---|---|---|---|---|---|---|---|---|---|')
  /** One table row: the figures of a round, or their medians over the rounds of one state. */
  const row = (first: string, on: boolean, f: (figure: (r: Round) => number) => number, mirrored: string, failures: string) =>
    [
      first,
      on ? 'on' : 'off',
      f(r => r.rps).toFixed(0),
      `${f(r => r.clientP50)} ms`,
      `${f(r => r.clientP99)} ms`,
      ms(f(r => r.serverP50)),
      `${ms(f(r => r.serverP99))} (${f(r => r.serverP99Bucket)} ms)`,
      ms(f(r => r.serverMean)),
      f(r => r.requests),
      mirrored,
      failures,
    ].join(' | ')
  for (const r of measured)
    console.log(
      `| ${row(String(r.round), r.shadow, figure => figure(r), `${drawn(r)} (${r.mirrored.agree} / ${drawn(r) - r.mirrored.agree})`, String(r.failures))} |`,
    )
  const of = (on: boolean, figure: (r: Round) => number) => median(measured.filter(r => r.shadow === on).map(figure))
  for (const on of [false, true]) console.log(`| ${row('median', on, figure => of(on, figure), '', '')} |`)

  const ratio = (figure: (r: Round) => number) => (of(true, figure) / of(false, figure)).toFixed(2)
  console.log(
    `\nratio p99 on / off: client ${ratio(r => r.clientP99)}, server ${ratio(r => r.serverP99)}; ` +
      `p50 on / off: client ${ratio(r => r.clientP50)}, server ${ratio(r => r.serverP50)}; server mean on / off ${ratio(r => r.serverMean)}`,
  )
  const sum = (list: Round[], figure: (r: Round) => number) => list.reduce((total, r) => total + figure(r), 0)
  const onRounds = measured.filter(r => r.shadow)
  const offRounds = measured.filter(r => !r.shadow)
  const total = Object.fromEntries(RESULTS.map(result => [result, sum(onRounds, r => r.mirrored[result])]))
  console.log(
    `mirrored in the "on" rounds: ${sum(onRounds, drawn)} of ${sum(onRounds, r => r.requests)} requests (${((100 * sum(onRounds, drawn)) / sum(onRounds, r => r.requests)).toFixed(1)}%): ` +
      `${RESULTS.map(result => `${total[result]} ${result}`).join(', ')}; in the "off" rounds: ${sum(offRounds, drawn)}; ` +
      `failed client requests: ${sum(measured, r => r.failures)}`,
  )
} finally {
  forward?.kill('SIGTERM')
  await setup.stop()
  stopRealNode()
  stopDockerEngine()
  stopKubeCluster()
}
