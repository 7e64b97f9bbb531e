/**
 * The loader's peak memory (maximum resident set, from GNU time) and wall time
 * for one pull of a large model, each a fresh process, against curl
 * downloading the same object into a file from the same emulator in the same
 * run: the pod's loader limit must hold for any model size.
 *
 *   npm run build && npx tsx bench/loader-memory.ts [--mib 1024] [--runs 3]
 */
import {execFileSync, spawnSync} from 'node:child_process'
import {rmSync} from 'node:fs'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {FakeGcs} from '../test/env/fake-gcs.js'
import {writeSyntheticOnnx} from '../test/helpers/onnx-writer.js'
import {tempDir} from '../test/helpers/stores.js'
import {BIN, median} from './lib.js'

const {values} = parseArgs({options: {mib: {type: 'string', default: '1024'}, runs: {type: 'string', default: '3'}}})
const mib = Number(values.mib)
const runs = Number(values.runs)
const dir = tempDir('mlops-bench-')
const model = join(dir, 'model.onnx')
writeSyntheticOnnx(model, mib << 20)
const gcs = await FakeGcs.start()
await gcs.createBucket('bench')
const env = {...process.env, MLOPS_STORE: 'gs://bench/models', MLOPS_GCS_ENDPOINT: gcs.url, CI: '1'}

/** Peak RSS in MiB and wall seconds of one command, from /usr/bin/time -v. */
function measure(command: string, args: string[]): {rss: number; seconds: number} {
  const run = spawnSync('/usr/bin/time', ['-v', command, ...args], {env, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe']})
  if (run.status !== 0) throw new Error(`${command} exited ${run.status}: ${run.stderr}`)
  const report = run.stderr
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(report)![1]) / 1024
  const [, m, s] = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\d+):([\d.]+)/.exec(report)!
  return {rss, seconds: Number(m) * 60 + Number(s)}
}

try {
  execFileSync(process.execPath, [BIN, 'model', 'push', model, '--name', 'big'], {env, stdio: 'ignore'})
  rmSync(model)
  const ours: Array<{rss: number; seconds: number}> = []
  const curl: Array<{rss: number; seconds: number}> = []
  for (let run = 0; run < runs; run++) {
    const out = join(dir, `run-${run}`)
    curl.push(
      measure('curl', [
        '-sSf',
        '-o',
        `${out}.curl`,
        `${gcs.url}/storage/v1/b/bench/o/${encodeURIComponent('models/big/1/model.onnx')}?alt=media`,
      ]),
    )
    ours.push(measure(process.execPath, [BIN, 'model', 'pull', 'big@1', '--to', `${out}.onnx`]))
    rmSync(`${out}.curl`)
    rmSync(`${out}.onnx`)
  }

  const rss = (list: typeof ours) => median(list.map(r => r.rss))
  const wall = (list: typeof ours) => median(list.map(r => r.seconds))
  console.log(`pull of a ${mib} MiB model from fake-gcs-server, fresh process each, median of ${runs}`)
  console.log('| | peak RSS | wall time |')
  console.log('|---|---|---|')
  console.log(`| curl (alt=media into a file) | ${rss(curl).toFixed(0)} MiB | ${wall(curl).toFixed(2)} s |`)
  console.log(`| mlops model pull (verified) | ${rss(ours).toFixed(0)} MiB | ${wall(ours).toFixed(2)} s |`)
  console.log(
    `| mlops / curl | ${(rss(ours) / rss(curl)).toFixed(1)}x | ${(wall(ours) / wall(curl)).toFixed(2)} (throughput ${(wall(curl) / wall(ours)).toFixed(2)} of curl) |`,
  )
} finally {
  await gcs.stop()
  rmSync(dir, {recursive: true, force: true})
}
