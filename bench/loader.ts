/**
 * The loader, `mlops model pull` into a file as the initContainer runs it,
 * against the peers a user would otherwise pick, in the same run on the same
 * emulator, each a fresh process, alternated: a Python loader built as the
 * original's is (google-cloud-storage in a temporary venv, an anonymous client,
 * `blob.download_to_filename`; generated here, not committed) and curl (one
 * `alt=media` GET into a file: the physical limit). Wall time and peak RSS
 * (GNU time) for the 2.4 KiB sample model and synthetic models of the given
 * sizes. With --before DIR (a built checkout of another commit), its loader
 * runs in the same loop too.
 *
 *   npm run build && npx tsx bench/loader.ts [--mib 256,1024] [--runs 15] [--large-runs 3] [--before DIR]
 */
import {execFileSync, spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {FakeGcs} from '../test/env/fake-gcs.js'
import {writeSyntheticOnnx} from '../test/helpers/onnx-writer.js'
import {fixture} from '../test/helpers/stores.js'
import {BIN, median} from './lib.js'

const {values} = parseArgs({
  options: {
    mib: {type: 'string', default: '256,1024'},
    runs: {type: 'string', default: '15'},
    'large-runs': {type: 'string', default: '3'},
    before: {type: 'string'},
  },
})
const BEFORE = values.before ? join(values.before, 'bin', 'run.js') : undefined

// The original loader's way: the storage client, anonymous (the emulator; on GKE it would be the
// pod's identity), one blob downloaded to the volume's file.
const PYTHON_LOADER = `
import sys
from google.cloud import storage

client = storage.Client.create_anonymous_client()
blob = client.bucket(sys.argv[1]).blob(sys.argv[2])
blob.download_to_filename(sys.argv[3])
`

interface Sample {
  seconds: number
  rssMiB: number
}

const temp = mkdtempSync(join(tmpdir(), 'mlops-bench-loader-'))
const gcs = await FakeGcs.start()
try {
  writeFileSync(join(temp, 'loader.py'), PYTHON_LOADER)
  execFileSync('python3', ['-m', 'venv', join(temp, 'venv')])
  execFileSync(join(temp, 'venv', 'bin', 'pip'), ['install', '-q', 'google-cloud-storage'], {stdio: 'inherit'})
  const python = join(temp, 'venv', 'bin', 'python')
  const pythonVersion = execFileSync(python, ['-c', 'import sys; print(sys.version.split()[0])'], {encoding: 'utf8'}).trim()
  const version = execFileSync(python, ['-c', 'import google.cloud.storage as s; print(s.__version__)'], {encoding: 'utf8'}).trim()
  await gcs.createBucket('bench')
  const env = {
    ...process.env,
    MLOPS_STORE: 'gs://bench/models',
    MLOPS_GCS_ENDPOINT: gcs.url,
    STORAGE_EMULATOR_HOST: gcs.url,
    CI: '1',
  }

  /** Wall time (ours: GNU time's has 10 ms steps) and peak RSS (GNU time's) of one command. */
  const measure = (command: string, args: string[]): Sample => {
    const started = process.hrtime.bigint()
    const run = spawnSync('/usr/bin/time', ['-v', command, ...args], {env, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe']})
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    if (run.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${run.status}: ${run.stderr}`)
    return {seconds, rssMiB: Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(run.stderr)![1]) / 1024}
  }

  const models: Array<{label: string; name: string; bytes: number; runs: number}> = [
    {label: 'sample, 2.4 KiB', name: 'sample', bytes: 0, runs: Number(values.runs)},
    ...values.mib
      .split(',')
      .map(mib => ({label: `synthetic, ${mib} MiB`, name: `m${mib}`, bytes: Number(mib) << 20, runs: Number(values['large-runs'])})),
  ]
  console.log(`google-cloud-storage ${version} (Python ${pythonVersion}), Node ${process.version}; median of each row's runs\n`)
  console.log(
    '| model | runs | mlops model pull | Python loader | curl | mlops / Python (time) | mlops throughput / curl | peak RSS: mlops, Python, curl |',
  )
  console.log('|---|---|---|---|---|---|---|---|')
  const beforeRows: string[] = []
  for (const model of models) {
    const source = model.bytes === 0 ? fixture('iris_svc.onnx') : join(temp, `${model.name}.onnx`)
    if (model.bytes > 0) writeSyntheticOnnx(source, model.bytes)
    execFileSync(process.execPath, [BIN, 'model', 'push', source, '--name', model.name], {env, stdio: 'ignore'})
    if (model.bytes > 0) rmSync(source)
    const key = `models/${model.name}/1/model.onnx`
    const samples: Record<'mlops' | 'python' | 'curl' | 'before', Sample[]> = {mlops: [], python: [], curl: [], before: []}
    for (let run = 0; run < model.runs; run++) {
      const out = join(temp, 'out.onnx')
      const each: Array<[keyof typeof samples, () => Sample]> = [
        ['mlops', () => measure(process.execPath, [BIN, 'model', 'pull', `${model.name}@1`, '--to', out])],
        ['python', () => measure(python, [join(temp, 'loader.py'), 'bench', key, out])],
        ['curl', () => measure('curl', ['-sSf', '-o', out, `${gcs.url}/storage/v1/b/bench/o/${encodeURIComponent(key)}?alt=media`])],
      ]
      if (BEFORE) each.push(['before', () => measure(process.execPath, [BEFORE, 'model', 'pull', `${model.name}@1`, '--to', out])])
      // A different order each run, so that no tool always follows the same one.
      for (let i = 0; i < each.length; i++) {
        const [name, go] = each[(i + run) % each.length]
        samples[name].push(go())
        rmSync(out, {force: true})
      }
    }
    const t = (name: keyof typeof samples) => median(samples[name].map(s => s.seconds))
    const rss = (name: keyof typeof samples) => median(samples[name].map(s => s.rssMiB)).toFixed(0)
    console.log(
      [
        `| ${model.label} | ${model.runs} | ${t('mlops').toFixed(3)} s | ${t('python').toFixed(3)} s | ${t('curl').toFixed(3)} s`,
        `**${(t('mlops') / t('python')).toFixed(2)}** | **${(t('curl') / t('mlops')).toFixed(2)}**`,
        `${rss('mlops')}, ${rss('python')}, ${rss('curl')} MiB |`,
      ].join(' | '),
    )
    if (BEFORE)
      beforeRows.push(
        `| ${model.label} | ${t('mlops').toFixed(3)} s, ${rss('mlops')} MiB | ${t('before').toFixed(3)} s, ${rss('before')} MiB | **${(t('mlops') / t('before')).toFixed(2)}** |`,
      )
  }
  if (BEFORE) {
    console.log(`\n| model | this build | ${values.before} | time, this / before |`)
    console.log('|---|---|---|---|')
    for (const row of beforeRows) console.log(row)
  }
} finally {
  await gcs.stop()
  rmSync(temp, {recursive: true, force: true})
}
