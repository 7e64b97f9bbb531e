/**
 * What shadow traffic costs the stable server: POST /predict/label on the SVC fixture (one
 * worker) with no shadow, against the same server mirroring 10% of its requests to a live
 * candidate (another `mlops serve` of the same model, so every mirrored request agrees). Both
 * stable servers run for the whole bench and are loaded in turn, round after round (autocannon,
 * keep-alive), so drift in the machine's load falls on both; the figures are the medians over
 * the rounds, and the ratio is shadowed over none. The candidate runs on the same cores, as the
 * load generator does: its work is part of what the shadowed rounds pay here, not in a cluster
 * where it has a pod of its own.
 *
 * Two loads: closed loop (autocannon sends as fast as the server answers: the throughput
 * figure, where any extra work shows) and a fixed rate well below it (2000 req/s in all: the
 * latency a server that is not saturated gives, as a pod sized with headroom runs).
 *
 *   npm run build && npx tsx bench/shadow.ts [--seconds 5] [--rounds 5] [--connections 32] [--rate 2000] [--sample 0.1]
 */
import autocannon from 'autocannon'
import {type ChildProcess, spawn} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {parseArgs} from 'node:util'

import {freePort, waitFor} from '../test/env/ports.js'
import {metric} from '../test/helpers/metrics.js'
import {irisServeArgs, median} from './lib.js'

const {values} = parseArgs({
  options: {
    seconds: {type: 'string', default: '5'},
    rounds: {type: 'string', default: '5'},
    connections: {type: 'string', default: '32'},
    rate: {type: 'string', default: '2000'},
    sample: {type: 'string', default: '0.1'},
  },
})
const [seconds, rounds, connections, rate] = [
  Number(values.seconds),
  Number(values.rounds),
  Number(values.connections),
  Number(values.rate),
]
const body = JSON.stringify({data: [[6.3, 3.3, 6, 2.5]]})

async function startServer(extra: string[] = []): Promise<{child: ChildProcess; url: string}> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const child = spawn(process.execPath, [...irisServeArgs(port), ...extra], {stdio: 'ignore'})
  await waitFor(async () => (await fetch(`${url}/ready`)).ok, 'server ready', 30_000)
  return {child, url}
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise(resolve => {
    child.once('exit', resolve)
  })
  child.kill('SIGTERM')
  await exited
}

/** Closed loop (as fast as the server answers) or, with `overallRate`, that many requests a second in all. */
async function load(url: string, duration: number, overallRate?: number): Promise<autocannon.Result> {
  const result = await autocannon({
    url: `${url}/predict/label`,
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body,
    connections,
    pipelining: 1,
    duration,
    ...(overallRate && {overallRate}),
  })
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${result.non2xx} non-2xx answers, ${result.errors} errors at ${url}`)
  return result
}

interface Figures {
  p50: number[]
  p99: number[]
  rps: number[]
  /** The stable server's own CPU time (user + system) per request answered, in µs. */
  cpu: number[]
}

/** A process's CPU time so far (user + system), in seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

const candidate = await startServer()
const plain = await startServer()
const shadowed = await startServer(['--shadow-url', candidate.url, '--shadow-sample', values.sample])
const levels = [
  {name: `closed loop, ${connections} connections`, rate: undefined},
  {name: `${rate} req/s, ${connections} connections`, rate},
]
const noFigures = (): Figures => ({p50: [], p99: [], rps: [], cpu: []})
const figures = levels.map(() => ({none: noFigures(), shadow: noFigures()}))
try {
  // Warm both (JIT, connections) before anything is counted.
  await load(plain.url, 1)
  await load(shadowed.url, 1)
  for (let round = 0; round < rounds; round++) {
    // Alternate which goes first, so neither always follows the other.
    const order = round % 2 === 0 ? (['none', 'shadow'] as const) : (['shadow', 'none'] as const)
    for (const [index, level] of levels.entries()) {
      for (const which of order) {
        const server = which === 'none' ? plain : shadowed
        const before = cpuSeconds(server.child.pid!)
        const result = await load(server.url, seconds, level.rate)
        figures[index][which].cpu.push(((cpuSeconds(server.child.pid!) - before) / result.requests.total) * 1e6)
        figures[index][which].p99.push(result.latency.p99)
        figures[index][which].p50.push(result.latency.p50)
        figures[index][which].rps.push(result.requests.average)
      }
    }
  }

  const counted: Record<string, number> = Object.fromEntries(
    await Promise.all(
      ['agree', 'disagree', 'error', 'timeout', 'dropped'].map(async result => [
        result,
        await metric(shadowed.url, 'mlops_shadow_requests_total', `result="${result}"`),
      ]),
    ),
  )
  const served = await metric(shadowed.url, 'mlops_http_requests_total', 'route="/predict/label"')
  const row = (level: string, name: string, f: Figures) =>
    `| ${level} | ${name} | ${median(f.rps).toFixed(0)} | ${median(f.p50).toFixed(1)} ms | ${median(f.p99).toFixed(1)} ms | ${f.p99.join(', ')} | ${median(f.cpu).toFixed(0)} µs |`
  console.log(
    `SVC fixture (iris_svc.onnx), POST /predict/label with one row, one worker; ${rounds} rounds of ${seconds} s per level and server, alternating; stable, candidate and autocannon on the same cores`,
  )
  console.log(
    '| load | stable server | req/s (median) | p50 (median) | p99 (median) | p99 of each round (ms) | stable CPU per request (median) |',
  )
  console.log('|---|---|---|---|---|---|---|')
  for (const [index, level] of levels.entries()) {
    console.log(row(level.name, 'no shadow', figures[index].none))
    console.log(row(level.name, `shadow, sample ${values.sample}`, figures[index].shadow))
  }

  console.log('')
  for (const [index, level] of levels.entries()) {
    const {none, shadow} = figures[index]
    const ratio = (figure: keyof Figures) => (median(shadow[figure]) / median(none[figure])).toFixed(2)
    console.log(`ratio shadow / none, ${level.name}: p99 ${ratio('p99')}, req/s ${ratio('rps')}, stable CPU per request ${ratio('cpu')}`)
  }

  const drawn = Object.values(counted).reduce((sum, count) => sum + count, 0)
  console.log(
    `the shadowed server drew ${drawn} of its ${served} requests (${((100 * drawn) / served).toFixed(1)}%) for the candidate: ${Object.entries(
      counted,
    )
      .map(([result, count]) => `${count} ${result}`)
      .join(', ')}`,
  )
} finally {
  await Promise.all([stop(shadowed.child), stop(plain.child), stop(candidate.child)])
}
