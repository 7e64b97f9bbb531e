/**
 * `mlops predict --target k8s` (a port-forward through kube-apiserver and the
 * node's kubelet API, here kwok's) against `mlops predict --url` through
 * `kubectl port-forward deployment/iris` (what a user would do without
 * --target k8s), and against `mlops predict --url` straight to the same
 * `mlops serve` (no tunnel), alternated in one run, each run in a rotated order.
 *
 * Measured the same way for both tunnels:
 * - steady state: `-n REQUESTS -c 32` (default 20,000), the load generator's
 *   own figures. mlops opens its 32 tunnels before its clock starts; through
 *   kubectl's forward (already running) each of the 32 connections sets up a
 *   stream inside the clock. With 20,000 requests that set-up is a small part of
 *   either window; the one-request rows below show what set-up costs.
 * - cold: set-up inside the window for both. mlops: the whole
 *   `predict --target k8s` command. kubectl: from starting
 *   `kubectl port-forward` to the end of `predict --url` through it (its
 *   "Forwarding from" line awaited in between).
 *
 *   npm run build && npx tsx bench/port-forward.ts [--runs 5] [--requests 20000] [--cold-requests 2000]
 */
import {KubeConfig, KubernetesObjectApi} from '@kubernetes/client-node'
import {type ChildProcess, execFileSync, spawn} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {homedir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {inspectModelFile} from '../src/store/model-file.js'
import {FakeGcs} from '../test/env/fake-gcs.js'
import {kubeCluster, stopKubeCluster} from '../test/env/k8s.js'
import {freePort, waitFor} from '../test/env/ports.js'
import {fixture, makeStore, tempDir} from '../test/helpers/stores.js'
import {BIN, median, time, irisServeArgs} from './lib.js'

const kubectl = join(process.env.MLOPS_TEST_CACHE ?? join(homedir(), '.cache', 'mlops-test'), 'k8s-v1.36.3', 'bin', 'kubectl')

const {values} = parseArgs({
  options: {
    runs: {type: 'string', default: '5'},
    requests: {type: 'string', default: '20000'},
    'cold-requests': {type: 'string', default: '2000'},
  },
})
const runs = Number(values.runs)
const requests = String(values.requests)
const coldRequests = String(values['cold-requests'])
const concurrency = '32'
const row = '[[6.3,3.3,6.0,2.5]]'
const cluster = kubeCluster()
const gcs = await FakeGcs.start()
let server: ChildProcess | undefined
let forwarder: ChildProcess | undefined

/** `kubectl port-forward deployment/iris :8000`, resolved once it prints the local port. */
function startForward(env: NodeJS.ProcessEnv): {child: ChildProcess; url: Promise<string>} {
  const child = spawn(kubectl, ['port-forward', '-n', 'bench-pf', 'deployment/iris', ':8000', '--address', '127.0.0.1'], {
    env,
    stdio: ['ignore', 'pipe', 'ignore'],
  })
  const url = new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', chunk => {
      out += chunk
      const match = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out)
      if (match) resolve(`http://127.0.0.1:${match[1]}`)
    })
    child.on('exit', code => reject(new Error(`kubectl port-forward exited ${code}`)))
  })
  return {child, url}
}

async function stopForward(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise(resolve => {
    child.once('exit', resolve)
  })
  child.kill('SIGTERM')
  await exited
}

try {
  const store = await makeStore('gcs', {}, gcs)
  await store.store.push({
    model: await inspectModelFile(fixture('iris_svc.onnx'), fixture('iris_labels.json')),
    name: 'iris',
    metadata: {},
    workDir: tempDir(),
  })
  const project = tempDir()
  const config = join(project, 'mlops.yaml')
  writeFileSync(
    config,
    `name: iris\nmodel:\n  name: iris\nstore:\n  uri: ${store.uri}\n  endpoint: ${gcs.url}\n` +
      'image:\n  repository: registry.example.com/team\n  tag: v1\ndeploy:\n  target: k8s\n  namespace: bench-pf\n  autoscaling: false\n  replicas: 2\n',
  )
  const env = {...process.env, KUBECONFIG: cluster.kubeconfig, CI: '1'}
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  server = spawn(process.execPath, irisServeArgs(port), {stdio: 'ignore'})
  await waitFor(async () => (await fetch(`${url}/ready`)).ok, 'mlops serve ready')
  execFileSync(process.execPath, [BIN, 'deploy', '--config', config, '--model', 'iris@1'], {env, stdio: 'ignore'})
  const kc = new KubeConfig()
  kc.loadFromFile(cluster.kubeconfig)
  await KubernetesObjectApi.makeApiClient(kc).create({
    apiVersion: 'kwok.x-k8s.io/v1alpha1',
    kind: 'ClusterPortForward',
    metadata: {name: 'bench-pf'},
    spec: {selector: {matchNamespaces: ['bench-pf']}, forwards: [{target: {address: '127.0.0.1', port}}]},
  } as never)

  // kubectl's own port-forward through the same API server, kept running for the steady-state rows.
  const running = startForward(env)
  forwarder = running.child
  const kubectlUrl = await running.url

  const predict = (target: string[], extra: string[]) => [BIN, 'predict', '--config', config, ...target, '--data', row, ...extra]
  const load = (target: string[]): {requestsPerSecond: number; p50: number; p99: number} => {
    const out = execFileSync(process.execPath, predict(target, ['-n', requests, '--concurrency', concurrency, '--json']), {
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    const report = JSON.parse(out) as {load: {requestsPerSecond: number; p50: number; p99: number; errors: number}}
    if (report.load.errors > 0) throw new Error(`${report.load.errors} errors`)
    return report.load
  }

  /** kubectl port-forward started, its port awaited, then the same predict through it: set-up inside the clock. */
  const kubectlCold = async (extra: string[]): Promise<number> => {
    const started = process.hrtime.bigint()
    const forward = startForward(env)
    try {
      await time(process.execPath, predict(['--url', await forward.url], extra), env)
      return Number(process.hrtime.bigint() - started) / 1e9
    } finally {
      await stopForward(forward.child)
    }
  }

  const coldLoad = ['-n', coldRequests, '--concurrency', concurrency]
  type Name = 'direct' | 'kubectl' | 'forwarded'
  const names: Name[] = ['direct', 'kubectl', 'forwarded']
  const series = () => ({direct: [] as number[], kubectl: [] as number[], forwarded: [] as number[]})
  const rps = series()
  const p50 = series()
  const p99 = series()
  const once = series()
  const cold = series()
  const steady: Record<Name, string[]> = {direct: ['--url', url], kubectl: ['--url', kubectlUrl], forwarded: ['--target', 'k8s']}
  for (let i = 0; i < runs; i++) {
    // Rotate the order from run to run so that no client always goes first.
    const order = [...names.slice(i % 3), ...names.slice(0, i % 3)]
    for (const name of order) {
      const figures = load(steady[name])
      rps[name].push(figures.requestsPerSecond)
      p50[name].push(figures.p50)
      p99[name].push(figures.p99)
    }

    for (const name of order) {
      if (name === 'kubectl') {
        once.kubectl.push(await kubectlCold([]))
        cold.kubectl.push(await kubectlCold(coldLoad))
      } else {
        once[name].push(await time(process.execPath, predict(steady[name], []), env))
        cold[name].push(await time(process.execPath, predict(steady[name], coldLoad), env))
      }
    }
  }

  const show3 = (what: string, m: ReturnType<typeof series>, show: (v: number) => string) => {
    const [d, k, f] = [median(m.direct), median(m.kubectl), median(m.forwarded)]
    console.log(`| ${what} | ${show(d)} | ${show(k)} | ${show(f)} | ${(f / k).toFixed(2)} | ${(f / d).toFixed(2)} |`)
  }

  const seconds = (v: number) => `${v.toFixed(3)} s`
  console.log(`median of ${runs} runs, --concurrency ${concurrency}, the same mlops serve behind all three, order rotated per run`)
  console.log(
    '| measure | predict --url (direct, no tunnel) | predict --url via kubectl port-forward | predict --target k8s | k8s / kubectl | k8s / direct |',
  )
  console.log('|---|---|---|---|---|---|')
  show3(`steady state, -n ${requests}: requests/s`, rps, v => v.toFixed(0))
  show3(`steady state, -n ${requests}: p50`, p50, v => `${v.toFixed(2)} ms`)
  show3(`steady state, -n ${requests}: p99`, p99, v => `${v.toFixed(2)} ms`)
  show3('cold, one request: wall time with set-up', once, seconds)
  show3(`cold, -n ${coldRequests}: wall time with set-up`, cold, seconds)
  const perRun = rps.forwarded.map((f, i) => (f / rps.kubectl[i]).toFixed(2))
  console.log(`\nsteady-state requests/s, k8s / kubectl, run by run: ${perRun.join(', ')}`)
  console.log(
    'cold rows: "direct" is the predict command alone; "kubectl" is kubectl port-forward started, its port awaited,' +
      ' then the same predict through it; "k8s" is the whole predict --target k8s command',
  )
} finally {
  server?.kill('SIGTERM')
  if (forwarder) await stopForward(forwarder)
  await gcs.stop()
  stopKubeCluster()
}
