/**
 * Push and pull of a large model through `mlops` (the real CLI, a process
 * per command, start-up included) against fake-gcs-server, with curl doing a
 * simple media upload (--data-binary) and an alt=media download into a file
 * of the same model against the same server as the baseline, in this run.
 *
 * --repeat R measures R times over (each time with a fresh emulator and
 * --runs alternated runs), prints each repeat's table and then the range of
 * the push and pull ratios: the push ratio swings between repeats of the same
 * code (the emulator's memory backend), so it is reported as a range.
 *
 *   npx tsx bench/store-transfer.ts [--mib 512] [--runs 3] [--repeat 1]
 */
import {rmSync, statSync} from 'node:fs'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {FakeGcs} from '../test/env/fake-gcs.js'
import {tempDir} from '../test/helpers/stores.js'
import {writeSyntheticOnnx} from '../test/helpers/onnx-writer.js'
import {BIN, fmt, median, time} from './lib.js'

const {values} = parseArgs({
  options: {mib: {type: 'string', default: '512'}, runs: {type: 'string', default: '3'}, repeat: {type: 'string', default: '1'}},
})
const mib = Number(values.mib)
const runs = Number(values.runs)
const repeats = Number(values.repeat)

const dir = tempDir('mlops-bench-')
const model = join(dir, 'model.onnx')
writeSyntheticOnnx(model, mib * 1024 * 1024)
const bytes = statSync(model).size
const curl = (args: string[], out = '/dev/null') => time('curl', ['-sS', '--fail', '-o', out, ...args])
const mibs = (seconds: number) => `${(bytes / 1024 / 1024 / seconds).toFixed(0)} MiB/s`

/** One repeat: a fresh emulator, `runs` alternated runs; the medians' ratios. */
async function measure(repeat: number): Promise<{push: number; pull: number}> {
  const gcs = await FakeGcs.start()
  await gcs.createBucket('bench')
  const env = {MLOPS_STORE: 'gs://bench/models', MLOPS_GCS_ENDPOINT: gcs.url, CI: '1'}
  const push: number[] = []
  const curlUp: number[] = []
  const pull: number[] = []
  const curlDown: number[] = []
  const repull: number[] = []
  try {
    for (let run = 0; run < runs; run++) {
      // Alternate the tools within each run so that drift in the machine hits both.
      curlUp.push(
        await curl([
          '-X',
          'POST',
          '-H',
          'content-type: application/octet-stream',
          '--data-binary',
          `@${model}`,
          `${gcs.url}/upload/storage/v1/b/bench/o?uploadType=media&name=curl-${run}.onnx`,
        ]),
      )
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
  }

  const row = (what: string, ours: number, base: number) =>
    `| ${what} | ${fmt(ours)} (${mibs(ours)}) | ${fmt(base)} (${mibs(base)}) | ${(base / ours).toFixed(2)} |`
  console.log(
    `${repeats > 1 ? `repeat ${repeat + 1} of ${repeats}: ` : ''}${(bytes / 1024 / 1024).toFixed(0)} MiB ONNX model, fake-gcs-server (memory backend) on 127.0.0.1, median of ${runs} runs`,
  )
  console.log('| transfer | mlops | curl | mlops/curl throughput |')
  console.log('|---|---|---|---|')
  console.log(row('push (upload)', median(push), median(curlUp)))
  console.log(row('pull (download)', median(pull), median(curlDown)))
  console.log(`| second pull, unchanged (nothing transferred) | ${fmt(median(repull))} | | |`)
  return {push: median(curlUp) / median(push), pull: median(curlDown) / median(pull)}
}

try {
  const ratios: Array<{push: number; pull: number}> = []
  for (let repeat = 0; repeat < repeats; repeat++) {
    if (repeat > 0) console.log('')
    ratios.push(await measure(repeat))
  }

  if (repeats > 1) {
    const range = (values: number[]) =>
      `${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)} (${values.map(v => v.toFixed(2)).join(', ')})`
    console.log(
      `\nmlops/curl throughput over ${repeats} repeats of ${runs} runs: push ${range(ratios.map(r => r.push))}; pull ${range(ratios.map(r => r.pull))}`,
    )
  }
} finally {
  rmSync(dir, {recursive: true, force: true})
}
