/**
 * The loader, `mlops model pull` into a file as the initContainer runs it,
 * against the peers a user would otherwise pick, in the same run on the same
 * emulator, each a fresh process, alternated: a Python loader built as the
 * original's is (google-cloud-storage in a temporary venv, an anonymous client,
 * `blob.download_to_filename`; generated here, not committed), curl (one
 * `alt=media` GET into a file: the physical limit), `curl | sha256sum` (the
 * same GET piped into sha256sum: the peer that does the loader's verified
 * work) and `curl | openssl dgst -sha256` (the same with OpenSSL's SHA-256,
 * which uses the CPU's SHA instructions where coreutils' does not); each
 * pipeline's digest is checked against the model's. Wall time and
 * peak RSS (GNU time; for the pipeline, its largest process) for the 2.4 KiB
 * sample model (--runs 0 leaves it out) and synthetic models of the given
 * sizes. With --before DIR (a built checkout of another commit), its loader
 * runs in the same loop too; --without-python leaves the Python loader out.
 *
 *   npm run build && npx tsx bench/loader.ts [--mib 256,1024] [--runs 15] [--large-runs 3] [--before DIR] [--without-python]
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
    'without-python': {type: 'boolean', default: false},
  },
})
const BEFORE = values.before ? join(values.before, 'bin', 'run.js') : undefined
const PYTHON = !values['without-python']

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
  stdout: string
}

type Tool = 'before' | 'curl' | 'curlOpenssl' | 'curlSha256sum' | 'mlops' | 'python'

const temp = mkdtempSync(join(tmpdir(), 'mlops-bench-loader-'))
const gcs = await FakeGcs.start()
try {
  let python = ''
  let versions = `curl ${execFileSync('curl', ['--version'], {encoding: 'utf8'}).split(' ')[1]}, Node ${process.version}`
  if (PYTHON) {
    writeFileSync(join(temp, 'loader.py'), PYTHON_LOADER)
    execFileSync('python3', ['-m', 'venv', join(temp, 'venv')])
    execFileSync(join(temp, 'venv', 'bin', 'pip'), ['install', '-q', 'google-cloud-storage'], {stdio: 'inherit'})
    python = join(temp, 'venv', 'bin', 'python')
    const pythonVersion = execFileSync(python, ['-c', 'import sys; print(sys.version.split()[0])'], {encoding: 'utf8'}).trim()
    const version = execFileSync(python, ['-c', 'import google.cloud.storage as s; print(s.__version__)'], {encoding: 'utf8'}).trim()
    versions = `google-cloud-storage ${version} (Python ${pythonVersion}), ${versions}`
  }

  await gcs.createBucket('bench')
  const env = {
    ...process.env,
    MLOPS_STORE: 'gs://bench/models',
    MLOPS_GCS_ENDPOINT: gcs.url,
    STORAGE_EMULATOR_HOST: gcs.url,
    CI: '1',
  }

  /** Wall time (ours: GNU time's has 10 ms steps), peak RSS (GNU time's) and stdout of one command. */
  const measure = (command: string, args: string[]): Sample => {
    const started = process.hrtime.bigint()
    const run = spawnSync('/usr/bin/time', ['-v', command, ...args], {env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    if (run.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${run.status}: ${run.stderr}`)
    return {seconds, rssMiB: Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(run.stderr)![1]) / 1024, stdout: run.stdout}
  }

  const models: Array<{label: string; name: string; bytes: number; runs: number}> = [
    ...(Number(values.runs) > 0 ? [{label: 'sample, 2.4 KiB', name: 'sample', bytes: 0, runs: Number(values.runs)}] : []),
    ...values.mib
      .split(',')
      .map(mib => ({label: `synthetic, ${mib} MiB`, name: `m${mib}`, bytes: Number(mib) << 20, runs: Number(values['large-runs'])})),
  ]
  console.log(`${versions}; median of each row's runs\n`)
  console.log(
    [
      '| model | runs | mlops model pull | Python loader | curl | curl \\| sha256sum | curl \\| openssl | mlops / Python (time)',
      'mlops throughput / curl | mlops throughput / (curl \\| sha256sum) (paired runs: min–max) | mlops throughput / (curl \\| openssl)',
      'peak RSS: mlops, Python, curl, curl \\| sha256sum, curl \\| openssl |',
    ].join(' | '),
  )
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|')
  const beforeRows: string[] = []
  for (const model of models) {
    const source = model.bytes === 0 ? fixture('iris_svc.onnx') : join(temp, `${model.name}.onnx`)
    if (model.bytes > 0) writeSyntheticOnnx(source, model.bytes)
    const sha256 = execFileSync('sha256sum', [source], {encoding: 'utf8'}).split(' ')[0]
    execFileSync(process.execPath, [BIN, 'model', 'push', source, '--name', model.name], {env, stdio: 'ignore'})
    if (model.bytes > 0) rmSync(source)
    const key = `models/${model.name}/1/model.onnx`
    const url = `${gcs.url}/storage/v1/b/bench/o/${encodeURIComponent(key)}?alt=media`
    const samples: Record<Tool, Sample[]> = {mlops: [], python: [], curl: [], curlSha256sum: [], curlOpenssl: [], before: []}
    for (let run = 0; run < model.runs; run++) {
      const out = join(temp, 'out.onnx')
      const each: Array<[Tool, () => Sample]> = [
        ['mlops', () => measure(process.execPath, [BIN, 'model', 'pull', `${model.name}@1`, '--to', out])],
        ['curl', () => measure('curl', ['-sSf', '-o', out, url])],
        ['curlSha256sum', () => measure('bash', ['-c', 'set -o pipefail; curl -sSf "$1" | sha256sum', 'bash', url])],
        ['curlOpenssl', () => measure('bash', ['-c', 'set -o pipefail; curl -sSf "$1" | openssl dgst -sha256 -r', 'bash', url])],
      ]
      if (PYTHON) each.push(['python', () => measure(python, [join(temp, 'loader.py'), 'bench', key, out])])
      if (BEFORE) each.push(['before', () => measure(process.execPath, [BEFORE, 'model', 'pull', `${model.name}@1`, '--to', out])])
      // A different order each run, so that no tool always follows the same one.
      for (let i = 0; i < each.length; i++) {
        const [name, go] = each[(i + run) % each.length]
        const sample = go()
        if (name.startsWith('curl') && name !== 'curl' && !sample.stdout.startsWith(sha256))
          throw new Error(`${name} printed ${sample.stdout.trim()}, the model's sha256 is ${sha256}`)
        samples[name].push(sample)
        rmSync(out, {force: true})
      }
    }

    const t = (name: Tool) => median(samples[name].map(s => s.seconds))
    const rss = (name: Tool) => median(samples[name].map(s => s.rssMiB)).toFixed(0)
    const ifPython = (text: () => string) => (PYTHON ? text() : '–')
    const paired = samples.mlops.map((s, run) => samples.curlSha256sum[run].seconds / s.seconds)
    console.log(
      [
        `| ${model.label} | ${model.runs} | ${t('mlops').toFixed(3)} s | ${ifPython(() => `${t('python').toFixed(3)} s`)} | ${t('curl').toFixed(3)} s`,
        `${t('curlSha256sum').toFixed(3)} s | ${t('curlOpenssl').toFixed(3)} s | ${ifPython(() => (t('mlops') / t('python')).toFixed(2))}`,
        `${(t('curl') / t('mlops')).toFixed(2)} | **${(t('curlSha256sum') / t('mlops')).toFixed(2)}** (${Math.min(...paired).toFixed(2)}–${Math.max(...paired).toFixed(2)})`,
        `${(t('curlOpenssl') / t('mlops')).toFixed(2)}`,
        `${rss('mlops')}, ${ifPython(() => rss('python'))}, ${rss('curl')}, ${rss('curlSha256sum')}, ${rss('curlOpenssl')} MiB |`,
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
