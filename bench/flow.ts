/**
 * The whole flow for a user (issue 6), on the embedded defaults:
 *  1. `npm run quickstart`'s script, wall time (target: under 10 s warm);
 *  2. `mlops deploy --target local` to /ready for the sample model (target: under 2 s),
 *     with `node -e 0` in the same run as the floor of any Node process;
 *  3. `mlops predict -n N -c 32` against that local server versus autocannon
 *     sending the same payload to the same server, alternated in the same run
 *     (target: mlops' requests/s at least 0.8 of autocannon's): at the issue's
 *     N = 2000, each from a fresh process; and for 3 s warm (autocannon in
 *     this process) against predict sending as many requests as it did.
 *
 *   npm run build && npx tsx bench/flow.ts [--runs 5] [--requests 2000]
 */
import autocannon from 'autocannon'
import {execFileSync} from 'node:child_process'
import {rmSync} from 'node:fs'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {tempDir} from '../test/helpers/stores.js'
import {BIN, fmt, median, time} from './lib.js'

const {values} = parseArgs({options: {runs: {type: 'string', default: '5'}, requests: {type: 'string', default: '2000'}}})
const runs = Number(values.runs)
const requests = Number(values.requests)
const concurrency = 32
const row = [6.3, 3.3, 6, 2.5]
const root = join(import.meta.dirname, '..')

function mlops(cwd: string, ...args: string[]): string {
  return execFileSync(process.execPath, [BIN, ...args], {cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})
}

// 1. The quickstart, as the README runs it (without the build step).
const quickstarts: number[] = []
for (let i = 0; i < Math.min(runs, 3); i++)
  quickstarts.push(await time(process.execPath, [join(root, 'scripts', 'quickstart.js')], {CI: '1'}))

// 2. deploy --target local to ready, on a scaffolded project with the sample model pushed.
const work = tempDir('mlops-bench-flow-')
mlops(work, 'init', 'iris', '--yes')
const project = join(work, 'iris')
mlops(project, 'model', 'push', 'model/model.onnx', '--name', 'iris', '--labels', 'model/labels.json')
const node: number[] = []
const deploys: number[] = []
for (let i = 0; i < runs; i++) {
  node.push(await time(process.execPath, ['-e', '0']))
  deploys.push(await time(process.execPath, [BIN, 'deploy', '--model', 'iris@latest'], {}, project))
  if (i < runs - 1) mlops(project, 'delete')
}

// 3. predict -n N -c 32 versus autocannon, same server, same body, alternated.
//    autocannon checks for the end of an --amount run on a one-second tick, so
//    it runs for a fixed 3 s instead, and predict is measured twice: at the
//    issue's -n, and with as many requests as autocannon sent in its 3 s.
const url = (JSON.parse(mlops(project, 'status', '--json')) as {url: string}).url
const predictRps = (count: number): number => {
  const report = JSON.parse(
    mlops(project, 'predict', '--data', JSON.stringify([row]), '-n', String(count), '--concurrency', String(concurrency), '--json'),
  ) as {load: {requestsPerSecond: number; errors: number}}
  if (report.load.errors > 0) throw new Error(`mlops predict had ${report.load.errors} errors`)
  return report.load.requestsPerSecond
}

/**
 * autocannon sending exactly `amount` requests from a fresh Node process, as
 * mlops predict runs in one: both pay the same cold start of their client code.
 * Timed from its start to its last response (its own end comes on a one-second tick).
 */
const AUTOCANNON_ONCE = `
import autocannon from 'autocannon'
const [url, amount, connections, body] = process.argv.slice(1)
let answered = 0, last = 0
const started = performance.now()
const instance = autocannon({url, method: 'POST', headers: {'content-type': 'application/json'}, body, connections: Number(connections), pipelining: 1, amount: Number(amount)})
instance.on('response', () => { if (++answered === Number(amount)) last = performance.now() })
const result = await instance
if (result.errors + result.non2xx > 0) { console.error('autocannon errors', result.errors, result.non2xx); process.exit(1) }
console.log(Number(amount) / ((last - started) / 1000))
`
function autocannonAmount(amount: number): number {
  return Number(
    execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        AUTOCANNON_ONCE,
        `${url}/predict/label`,
        String(amount),
        String(concurrency),
        JSON.stringify({data: [row]}),
      ],
      {cwd: root, encoding: 'utf8'},
    ),
  )
}

const ours: number[] = []
const oursLong: number[] = []
const theirs: number[] = []
const theirsShort: number[] = []
let long = 0
try {
  for (let i = 0; i < 5; i++) {
    const result = await autocannon({
      url: `${url}/predict/label`,
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify({data: [row]}),
      connections: concurrency,
      pipelining: 1,
      duration: 3,
    })
    if (result.errors + result.non2xx > 0) throw new Error(`autocannon had ${result.errors + result.non2xx} errors`)
    theirs.push(result.requests.total / result.duration)
    long = result.requests.total
    theirsShort.push(autocannonAmount(requests))
    ours.push(predictRps(requests))
    oursLong.push(predictRps(long))
  }
} finally {
  mlops(project, 'delete')
  rmSync(work, {recursive: true, force: true})
}

console.log(`| measure | result | target |`)
console.log(`|---|---|---|`)
console.log(`| quickstart wall time (median of ${quickstarts.length}) | ${fmt(median(quickstarts))} | < 10 s |`)
console.log(`| deploy --target local to ready (median of ${runs}) | ${fmt(median(deploys))} (node -e 0: ${fmt(median(node))}) | < 2 s |`)
console.log(`| autocannon -c ${concurrency} for 3 s, same payload and server, req/s (median of 5) | ${median(theirs).toFixed(0)} | |`)
console.log(
  `| autocannon -a ${requests} -c ${concurrency} in a fresh process, timed to its last response, req/s (median of 5) | ${median(theirsShort).toFixed(0)} | |`,
)
console.log(
  `| predict -n ${requests} -c ${concurrency}, req/s (median of 5) | ${median(ours).toFixed(0)} (ratio ${(median(ours) / median(theirsShort)).toFixed(2)} to autocannon -a ${requests}) | ≥ 0.8 |`,
)
console.log(
  `| predict -n ${long} -c ${concurrency} (autocannon's count), req/s (median of 5) | ${median(oursLong).toFixed(0)} (ratio ${(median(oursLong) / median(theirs)).toFixed(2)}) | ≥ 0.8 |`,
)
