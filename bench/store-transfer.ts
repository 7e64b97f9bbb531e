/**
 * Push and pull of a large model through `mlops` (the real CLI, a process
 * per command, start-up included) against fake-gcs-server, with curl doing a
 * simple media upload (--data-binary) and an alt=media download into a file
 * of the same model against the same server as the baseline, in this run.
 *
 *   npx tsx bench/store-transfer.ts [--mib 512] [--runs 3]
 */
import {rmSync, statSync} from 'node:fs'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {FakeGcs} from '../test/env/fake-gcs.js'
import {tempDir} from '../test/helpers/stores.js'
import {writeSyntheticOnnx} from '../test/helpers/onnx-writer.js'
import {BIN, fmt, median, time} from './lib.js'

const {values} = parseArgs({options: {mib: {type: 'string', default: '512'}, runs: {type: 'string', default: '3'}}})
const mib = Number(values.mib)
const runs = Number(values.runs)

const dir = tempDir('mlops-bench-')
const model = join(dir, 'model.onnx')
writeSyntheticOnnx(model, mib * 1024 * 1024)
const bytes = statSync(model).size
const gcs = await FakeGcs.start()
await gcs.createBucket('bench')
const env = {MLOPS_STORE: 'gs://bench/models', MLOPS_GCS_ENDPOINT: gcs.url, CI: '1'}
const curl = (args: string[], out = '/dev/null') => time('curl', ['-sS', '--fail', '-o', out, ...args])

const push: number[] = []
const curlUp: number[] = []
const pull: number[] = []
const curlDown: number[] = []
const repull: number[] = []
try {
  for (let run = 0; run < runs; run++) {
    // Alternate the tools within each run so that drift in the machine hits both.
    curlUp.push(await curl(['-X', 'POST', '-H', 'content-type: application/octet-stream', '--data-binary', `@${model}`,
      `${gcs.url}/upload/storage/v1/b/bench/o?uploadType=media&name=curl-${run}.onnx`]))
    push.push(await time(process.execPath, [BIN, 'model', 'push', model, '--name', 'big', '--version', String(run + 1)], env))
    // Into a file, as mlops pull does (a user's `curl -o model.onnx`).
    curlDown.push(await curl([`${gcs.url}/storage/v1/b/bench/o/curl-${run}.onnx?alt=media`], join(dir, 'curl.onnx')))
    rmSync(join(dir, 'curl.onnx'))
    const out = join(dir, `pulled-${run}.onnx`)
    pull.push(await time(process.execPath, [BIN, 'model', 'pull', `big@${run + 1}`, '--to', out], env))
    repull.push(await time(process.execPath, [BIN, 'model', 'pull', `big@${run + 1}`, '--to', out], env))
    rmSync(out)
  }
} finally {
  await gcs.stop()
  rmSync(dir, {recursive: true, force: true})
}

const mibs = (seconds: number) => `${(bytes / 1024 / 1024 / seconds).toFixed(0)} MiB/s`
const row = (what: string, ours: number, base: number) =>
  `| ${what} | ${fmt(ours)} (${mibs(ours)}) | ${fmt(base)} (${mibs(base)}) | ${(base / ours).toFixed(2)} |`
console.log(`${(bytes / 1024 / 1024).toFixed(0)} MiB ONNX model, fake-gcs-server (memory backend) on 127.0.0.1, median of ${runs} runs`)
console.log('| transfer | mlops | curl | mlops/curl throughput |')
console.log('|---|---|---|---|')
console.log(row('push (upload)', median(push), median(curlUp)))
console.log(row('pull (download)', median(pull), median(curlDown)))
console.log(`| second pull, unchanged (nothing transferred) | ${fmt(median(repull))} | | |`)
