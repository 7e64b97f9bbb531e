/**
 * Start-up cost of the CLI: `mlops --version` and `mlops model list` on a
 * local store, against `node -e 0` (the floor for any Node CLI), same run.
 *
 *   npx tsx bench/cli-startup.ts [--runs 15]
 */
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {fixture, tempDir} from '../test/helpers/stores.js'
import {BIN, fmt, median, time} from './lib.js'

const {values} = parseArgs({options: {runs: {type: 'string', default: '15'}}})
const runs = Number(values.runs)
const store = join(tempDir('mlops-bench-'), 'store')
const env = {MLOPS_STORE: store}
for (let i = 0; i < 3; i++) await time(process.execPath, [BIN, 'model', 'push', fixture('iris_svc.onnx'), '--name', `model${i}`], env)

const node: number[] = []
const version: number[] = []
const list: number[] = []
for (let run = 0; run < runs; run++) {
  node.push(await time(process.execPath, ['-e', '0']))
  version.push(await time(process.execPath, [BIN, '--version']))
  list.push(await time(process.execPath, [BIN, 'model', 'list'], env))
}

const base = median(node)
console.log(`median of ${runs} runs`)
console.log('| command | wall time | ratio to node -e 0 |')
console.log('|---|---|---|')
console.log(`| node -e 0 | ${fmt(base)} | 1.00 |`)
console.log(`| mlops --version | ${fmt(median(version))} | ${(median(version) / base).toFixed(2)} |`)
console.log(`| mlops model list (local store, 3 models) | ${fmt(median(list))} | ${(median(list) / base).toFixed(2)} |`)
