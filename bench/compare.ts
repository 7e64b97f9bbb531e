/**
 * `mlops model compare` of the iris SVC against the random forest on the 1,000 reference rows
 * (the CLI as a process: the bundle, both versions pulled verified from a local store and run
 * in-process), against the same comparison written in Python with onnxruntime and numpy (label
 * agreement, max and mean |Δ| per class, the 5 worst rows), same run, alternated. Then the same
 * at 10,000 rows (the reference file ten times over, the most a reference set holds), where the
 * work per row outweighs starting the process.
 *
 * Python: the fixtures' venv when scripts/fixtures/make_fixtures.sh made it, else a venv made
 * once under the test cache with `pip install onnxruntime numpy`.
 *
 *   npm run build && npx tsx bench/compare.ts [--runs 15]
 */
import {execFileSync} from 'node:child_process'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {homedir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {fixture, tempDir} from '../test/helpers/stores.js'
import {BIN, fmt, median, time} from './lib.js'

const {values} = parseArgs({options: {runs: {type: 'string', default: '15'}}})
const runs = Number(values.runs)
const cache = process.env.MLOPS_TEST_CACHE ?? join(homedir(), '.cache', 'mlops-test')
const REFERENCE = fixture('iris_reference.csv')

/** A Python with onnxruntime and numpy. */
function python(): string {
  for (const venv of [join(cache, 'fixtures-venv'), join(cache, 'compare-bench-venv')]) {
    const bin = join(venv, 'bin', 'python')
    if (existsSync(bin)) return bin
  }

  const venv = join(cache, 'compare-bench-venv')
  execFileSync('python3', ['-m', 'venv', venv])
  execFileSync(join(venv, 'bin', 'pip'), ['install', '-q', 'onnxruntime', 'numpy'], {stdio: 'inherit'})
  return join(venv, 'bin', 'python')
}

/** The same comparison in Python, as one would write it with onnxruntime and numpy. */
const SCRIPT = `
import sys
import numpy as np
import onnxruntime as ort

a_path, b_path, rows_path = sys.argv[1:4]
rows = np.loadtxt(rows_path, delimiter=",", skiprows=1, dtype=np.float32)

def run(path):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {session.get_inputs()[0].name: rows})
    return labels, np.array([[p[k] for k in sorted(p)] for p in probabilities], dtype=np.float64)

(a_labels, a_p), (b_labels, b_p) = run(a_path), run(b_path)
agree = a_labels == b_labels
delta = np.abs(a_p - b_p)
row_delta = delta.max(axis=1)
worst = sorted(range(len(rows)), key=lambda i: (bool(agree[i]), -row_delta[i], i))[:5]
print(f"agreement {agree.mean():.4g} ({(~agree).sum()} rows disagree)")
for c in range(delta.shape[1]):
    print(f"class {c}: max {delta[:, c].max():.3g} mean {delta[:, c].mean():.3g} at row {delta[:, c].argmax() + 1}")
for i in worst:
    print(i + 1, rows[i].tolist(), int(a_labels[i]), a_p[i].round(3).tolist(), int(b_labels[i]), b_p[i].round(3).tolist(), f"{row_delta[i]:.3g}")
`

const dir = tempDir('mlops-bench-compare-')
const store = join(dir, 'store')
const env = {MLOPS_STORE: store}
for (const file of ['iris_svc.onnx', 'iris_rf.onnx'])
  await time(process.execPath, [BIN, 'model', 'push', fixture(file), '--name', 'iris', '--labels', fixture('iris_labels.json')], env)
const script = join(dir, 'compare.py')
writeFileSync(script, SCRIPT)
const py = python()
const large = join(dir, 'reference-10000.csv')
const [header, ...rows] = readFileSync(REFERENCE, 'utf8').trimEnd().split('\n')
writeFileSync(large, `${[header, ...Array.from({length: 10}, () => rows).flat()].join('\n')}\n`)
const models = [join(store, 'iris', '1', 'model.onnx'), join(store, 'iris', '2', 'model.onnx')]
const commands = (file: string) => ({
  mlops: [BIN, 'model', 'compare', 'iris@1', 'iris@2', '--reference', file],
  python: [script, ...models, file],
})

// Both say the same thing first.
const small = commands(REFERENCE)
console.log(execFileSync(process.execPath, small.mlops, {env: {...process.env, ...env}, encoding: 'utf8'}))
console.log(execFileSync(py, small.python, {encoding: 'utf8'}))
const [pythonVersion, ortVersion, numpyVersion] = execFileSync(
  py,
  ['-c', 'import onnxruntime, numpy, sys; print(sys.version.split()[0], onnxruntime.__version__, numpy.__version__)'],
  {encoding: 'utf8'},
)
  .trim()
  .split(' ')

console.log(
  `median of ${runs} alternated runs (after one warm-up round); Python ${pythonVersion}, onnxruntime ${ortVersion}, numpy ${numpyVersion}`,
)
console.log('| rows | mlops model compare (median, min-max) | python3 compare.py (median, min-max) | mlops / Python |')
console.log('|---|---|---|---|')
// The floor of each: starting the process and loading what the comparison needs, no model run.
const floor = {mlops: [BIN, '--version'], python: ['-c', 'import numpy, onnxruntime']}
for (const [count, file] of [
  [0, ''],
  [1000, REFERENCE],
  [10_000, large],
] as const) {
  const args = count === 0 ? floor : commands(file)
  const mlops: number[] = []
  const python: number[] = []
  for (let run = 0; run < runs + 1; run++) {
    const m = await time(process.execPath, args.mlops, env)
    const p = await time(py, args.python)
    if (run === 0) continue
    mlops.push(m)
    python.push(p)
  }

  const range = (values: number[]) => `${fmt(median(values))} (${Math.min(...values).toFixed(3)}-${Math.max(...values).toFixed(3)})`
  const rows = count === 0 ? "start-up only: mlops --version, python -c 'import numpy, onnxruntime'" : String(count)
  console.log(`| ${rows} | ${range(mlops)} | ${range(python)} | **${(median(mlops) / median(python)).toFixed(2)}** |`)
}
