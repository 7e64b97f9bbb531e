/**
 * Start-up cost of the CLI: `mlops --version` and `mlops model list` on a
 * local store, against `node -e 0` (the floor for any Node CLI), same run.
 *
 * With --before DIR (a built checkout of an earlier commit), the same two
 * commands of that build too, alternated in the same loop: after / before.
 *
 *   npx tsx bench/cli-startup.ts [--runs 15] [--before /path/to/earlier/checkout]
 */
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {fixture, tempDir} from '../test/helpers/stores.js'
import {BIN, fmt, median, time} from './lib.js'

const {values} = parseArgs({options: {runs: {type: 'string', default: '15'}, before: {type: 'string'}}})
const BEFORE = values.before ? join(values.before, 'bin', 'run.js') : undefined
const runs = Number(values.runs)
const store = join(tempDir('mlops-bench-'), 'store')
const env = {MLOPS_STORE: store}
for (let i = 0; i < 3; i++) await time(process.execPath, [BIN, 'model', 'push', fixture('iris_svc.onnx'), '--name', `model${i}`], env)

const node: number[] = []
const version: number[] = []
const list: number[] = []
const before = {version: [] as number[], list: [] as number[]}
for (let run = 0; run < runs; run++) {
  node.push(await time(process.execPath, ['-e', '0']))
  version.push(await time(process.execPath, [BIN, '--version']))
  list.push(await time(process.execPath, [BIN, 'model', 'list'], env))
  if (BEFORE) {
    before.version.push(await time(process.execPath, [BEFORE, '--version']))
    before.list.push(await time(process.execPath, [BEFORE, 'model', 'list'], env))
  }
}

const base = median(node)
console.log(`median of ${runs} runs`)
console.log('| command | wall time | ratio to node -e 0 |')
console.log('|---|---|---|')
console.log(`| node -e 0 | ${fmt(base)} | 1.00 |`)
console.log(`| mlops --version | ${fmt(median(version))} | ${(median(version) / base).toFixed(2)} |`)
console.log(`| mlops model list (local store, 3 models) | ${fmt(median(list))} | ${(median(list) / base).toFixed(2)} |`)
if (BEFORE) {
  console.log(`\n| command | this build | ${values.before} | this / before |`)
  console.log('|---|---|---|---|')
  console.log(
    `| mlops --version | ${fmt(median(version))} | ${fmt(median(before.version))} | ${(median(version) / median(before.version)).toFixed(2)} |`,
  )
  console.log(
    `| mlops model list | ${fmt(median(list))} | ${fmt(median(before.list))} | ${(median(list) / median(before.list)).toFixed(2)} |`,
  )
}
