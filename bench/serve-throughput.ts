/**
 * `mlops serve` under load: POST /predict/label on the SVC fixture at
 * concurrency 1, 32 and 128 (autocannon, keep-alive). Then start-up to
 * /ready, and RSS after warm-up versus after 100k requests.
 *
 * For context only, the same run also times one-row onnxruntime-node calls
 * alone in this process (same number in flight, no HTTP, no batching, no load
 * generator beside them). That is not a ceiling for the server (which batches
 * and shares the cores with autocannon), so no ratio is drawn against it.
 *
 *   npx tsx bench/serve-throughput.ts [--seconds 10] [--requests 100000]
 */
import autocannon from 'autocannon'
import {type ChildProcess, spawn} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {parseArgs} from 'node:util'
import * as ort from 'onnxruntime-node'

import {exposeZipMapInputs} from '../src/onnx/zipmap.js'
import {freePort, waitFor} from '../test/env/ports.js'
import {fixture} from '../test/helpers/stores.js'
import {irisServeArgs, median} from './lib.js'

const {values} = parseArgs({options: {seconds: {type: 'string', default: '10'}, requests: {type: 'string', default: '100000'}}})
const seconds = Number(values.seconds)
const row = [6.3, 3.3, 6, 2.5]
const body = JSON.stringify({data: [row]})

async function inProcess(concurrency: number): Promise<number> {
  const session = await ort.InferenceSession.create(exposeZipMapInputs(readFileSync(fixture('iris_svc.onnx'))).model, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  })
  const deadline = performance.now() + seconds * 1000
  let count = 0
  await Promise.all(
    Array.from({length: concurrency}, async () => {
      while (performance.now() < deadline) {
        const input = new ort.Tensor('float32', Float32Array.from(row), [1, 4])
        await session.run({float_input: input}, ['output_label', 'probabilities'])
        count++
      }
    }),
  )
  await session.release()
  return count / seconds
}

async function startServer(): Promise<{child: ChildProcess; url: string; startupSeconds: number}> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const started = performance.now()
  const child = spawn(process.execPath, irisServeArgs(port), {stdio: ['ignore', 'ignore', 'ignore']})
  await waitFor(async () => (await fetch(`${url}/ready`)).ok, 'server ready', 30_000)
  return {child, url, startupSeconds: (performance.now() - started) / 1000}
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise(resolve => {
    child.once('exit', resolve)
  })
  child.kill('SIGTERM')
  await exited
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024
}

async function load(url: string, options: {connections: number; duration?: number; amount?: number}): Promise<autocannon.Result> {
  return autocannon({
    url: `${url}/predict/label`,
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body,
    connections: options.connections,
    pipelining: 1,
    ...(options.amount === undefined ? {duration: options.duration} : {amount: options.amount}),
  })
}

const startups: number[] = []
for (let i = 0; i < 5; i++) {
  const server = await startServer()
  startups.push(server.startupSeconds)
  await stop(server.child)
}

const server = await startServer()
const rows: string[] = []
try {
  for (const connections of [1, 32, 128]) {
    const alone = await inProcess(connections)
    const result = await load(server.url, {connections, duration: seconds})
    if (result.non2xx > 0 || result.errors > 0)
      throw new Error(`${result.non2xx} non-2xx answers, ${result.errors} errors at concurrency ${connections}`)
    rows.push(
      `| ${connections} | ${result.requests.average.toFixed(0)} | ${result.latency.p50} ms | ${result.latency.p99} ms | ${alone.toFixed(0)} |`,
    )
  }

  await load(server.url, {connections: 8, amount: 2000})
  const warm = rssMiB(server.child.pid!)
  const soak = await load(server.url, {connections: 32, amount: Number(values.requests)})
  const after = rssMiB(server.child.pid!)
  console.log(
    `SVC fixture (iris_svc.onnx), POST /predict/label with one row, ${seconds} s per level, server and load generator on the same 2 cores`,
  )
  console.log('| concurrency | server req/s | p50 | p99 | context: onnxruntime calls alone, no HTTP, not a ceiling (calls/s) |')
  console.log('|---|---|---|---|---|')
  for (const line of rows) console.log(line)
  console.log(
    `\nstart-up, process start to /ready 200: median ${median(startups).toFixed(3)} s of ${startups.length} (${startups.map(s => s.toFixed(3)).join(', ')})`,
  )
  const growth = (((after - warm) / warm) * 100).toFixed(1)
  console.log(
    `RSS: ${warm.toFixed(1)} MiB after warm-up, ${after.toFixed(1)} MiB after ${soak.requests.total} more requests (${growth}% growth, ${soak.non2xx} non-2xx)`,
  )
} finally {
  await stop(server.child)
}
