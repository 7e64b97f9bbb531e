/**
 * `mlops predict --target k8s` (a port-forward through kube-apiserver and the
 * node's kubelet API, here kwok's) against `mlops predict --url` straight to
 * the same `mlops serve`, and against `mlops predict --url` through
 * `kubectl port-forward deployment/iris` (what a user would do without
 * --target k8s), alternated in one run: what the tunnel costs in requests/s
 * and latency, and the whole command for one request.
 *
 *   npm run build && npx tsx bench/port-forward.ts [--runs 5] [--requests 2000]
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
import {BIN, fmt, median, time} from './lib.js'

const kubectl = join(process.env.MLOPS_TEST_CACHE ?? join(homedir(), '.cache', 'mlops-test'), 'k8s-v1.36.3', 'bin', 'kubectl')

const {values} = parseArgs({options: {runs: {type: 'string', default: '5'}, requests: {type: 'string', default: '2000'}}})
const runs = Number(values.runs)
const requests = String(values.requests)
const row = '[[6.3,3.3,6.0,2.5]]'
const cluster = kubeCluster()
const gcs = await FakeGcs.start()
let server: ChildProcess | undefined
let forwarder: ChildProcess | undefined
try {
  const store = await makeStore('gcs', {}, gcs)
  await store.store.push({model: await inspectModelFile(fixture('iris_svc.onnx'), fixture('iris_labels.json')), name: 'iris', metadata: {}, workDir: tempDir()})
  const project = tempDir()
  const config = join(project, 'mlops.yaml')
  writeFileSync(config, `name: iris\nmodel:\n  name: iris\nstore:\n  uri: ${store.uri}\n  endpoint: ${gcs.url}\nimage:\n  repository: registry.example.com/team\n  tag: v1\ndeploy:\n  target: k8s\n  namespace: bench-pf\n  autoscaling: false\n  replicas: 2\n`)
  const env = {...process.env, KUBECONFIG: cluster.kubeconfig}
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  server = spawn(process.execPath, [BIN, 'serve', '--model', fixture('iris_svc.onnx'), '--labels', fixture('iris_labels.json'), '--host', '127.0.0.1', '--port', String(port)], {stdio: 'ignore'})
  await waitFor(async () => (await fetch(`${url}/ready`)).ok, 'mlops serve ready')
  execFileSync(process.execPath, [BIN, 'deploy', '--config', config, '--model', 'iris@1'], {env, stdio: 'ignore'})
  const kc = new KubeConfig()
  kc.loadFromFile(cluster.kubeconfig)
  await KubernetesObjectApi.makeApiClient(kc).create({
    apiVersion: 'kwok.x-k8s.io/v1alpha1', kind: 'ClusterPortForward', metadata: {name: 'bench-pf'},
    spec: {selector: {matchNamespaces: ['bench-pf']}, forwards: [{target: {address: '127.0.0.1', port}}]},
  } as never)

  // kubectl's own port-forward (SPDY over WebSocket through the same API server), as the baseline tunnel.
  forwarder = spawn(kubectl, ['port-forward', '-n', 'bench-pf', 'deployment/iris', ':8000', '--address', '127.0.0.1'], {env, stdio: ['ignore', 'pipe', 'ignore']})
  const kubectlUrl = await new Promise<string>((resolve, reject) => {
    let out = ''
    forwarder!.stdout!.on('data', chunk => {
      out += chunk
      const match = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out)
      if (match) resolve(`http://127.0.0.1:${match[1]}`)
    })
    forwarder!.on('exit', code => reject(new Error(`kubectl port-forward exited ${code}`)))
  })

  const load = (target: string[]): {requestsPerSecond: number; p50: number; p99: number} => {
    const out = execFileSync(process.execPath, [BIN, 'predict', '--config', config, ...target, '--data', row, '-n', requests, '--concurrency', '32', '--json'], {env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']})
    const report = JSON.parse(out) as {load: {requestsPerSecond: number; p50: number; p99: number; errors: number}}
    if (report.load.errors > 0) throw new Error(`${report.load.errors} errors`)
    return report.load
  }

  const series = () => ({direct: [] as number[], kubectl: [] as number[], forwarded: [] as number[]})
  const once = series()
  const rps = series()
  const p50 = series()
  const p99 = series()
  for (let i = 0; i < runs; i++) {
    once.direct.push(await time(process.execPath, [BIN, 'predict', '--config', config, '--url', url, '--data', row], env))
    once.kubectl.push(await time(process.execPath, [BIN, 'predict', '--config', config, '--url', kubectlUrl, '--data', row], env))
    once.forwarded.push(await time(process.execPath, [BIN, 'predict', '--config', config, '--target', 'k8s', '--data', row], env))
    for (const [name, target] of [['direct', ['--url', url]], ['kubectl', ['--url', kubectlUrl]], ['forwarded', ['--target', 'k8s']]] as const) {
      const figures = load([...target])
      rps[name].push(figures.requestsPerSecond)
      p50[name].push(figures.p50)
      p99[name].push(figures.p99)
    }
  }

  const row3 = (what: string, m: ReturnType<typeof series>, show: (v: number) => string) => {
    const [d, k, f] = [median(m.direct), median(m.kubectl), median(m.forwarded)]
    console.log(`| ${what} | ${show(d)} | ${show(k)} | ${show(f)} | ${(f / k).toFixed(2)} | ${(f / d).toFixed(2)} |`)
  }

  console.log(`median of ${runs} runs, -n ${requests} --concurrency 32, the same mlops serve behind all three`)
  console.log('| measure | predict --url (direct) | predict --url via kubectl port-forward | predict --target k8s | k8s / kubectl | k8s / direct |')
  console.log('|---|---|---|---|---|---|')
  row3('one request, whole command', once, fmt)
  row3('requests/s', rps, v => v.toFixed(0))
  row3('p50', p50, v => `${v.toFixed(2)} ms`)
  row3('p99', p99, v => `${v.toFixed(2)} ms`)
} finally {
  server?.kill('SIGTERM')
  forwarder?.kill('SIGTERM')
  await gcs.stop()
  stopKubeCluster()
}
