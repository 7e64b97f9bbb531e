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

// The vendored bundles (scripts/vendor.js) against loading the packages themselves, each in a fresh process.
const root = join(import.meta.dirname, '..')
const loads = {
  'client-node package': "import('@kubernetes/client-node')",
  'client-node bundle (dist/vendor/kubernetes.js)': "import('./dist/vendor/kubernetes.js')",
  'storage + auth packages': "Promise.all([import('@google-cloud/storage'), import('google-auth-library')])",
  'storage + auth bundle (dist/vendor/gcs.js)': "import('./dist/vendor/gcs.js')",
} as const
const loadTimes: Record<string, number[]> = Object.fromEntries(Object.keys(loads).map(name => [name, []]))
for (let run = 0; run < runs; run++) {
  for (const [name, code] of Object.entries(loads))
    loadTimes[name].push(await time(process.execPath, ['--input-type=module', '-e', `await ${code}`], {}, root))
}

const loadRow = (name: keyof typeof loads, baseline?: keyof typeof loads) =>
  `| ${name} | ${fmt(median(loadTimes[name]) - base)} | ${baseline ? ((median(loadTimes[name]) - base) / (median(loadTimes[baseline]) - base)).toFixed(2) : '1.00'} |`
console.log('\n| module load (wall time minus node -e 0) | time | ratio to the package |')
console.log('|---|---|---|')
console.log(loadRow('client-node package'))
console.log(loadRow('client-node bundle (dist/vendor/kubernetes.js)', 'client-node package'))
console.log(loadRow('storage + auth packages'))
console.log(loadRow('storage + auth bundle (dist/vendor/gcs.js)', 'storage + auth packages'))
