/**
 * Runtime parity per API image, and the compatibility matrix (issue 24), on the real Docker engine
 * of test/env (host Node 20 stand-in base):
 *   - one check: `mlops image check --model iris@1 --image IMAGE` (CLI start, the store pull of the
 *     model, labels and 1,000-row reference set, the container with the files put in, the strict
 *     read of its answer, the record in the store) against the bare container doing the same check
 *     on the same files: `docker run --rm --network none -v DIR:/workdir:ro ... IMAGE --check --json`
 *     (the physical limit of a check in the image), alternately, median of --runs;
 *   - the matrix: 5 API images (distinct IDs) × 10 versions checked one by one (50 checks, total),
 *     then `mlops image check --matrix` against `mlops model list iris` (one listing of the same
 *     store and a read per version), median of --runs.
 *
 *   npm run build && npx tsx bench/image-check.ts [--runs 9]
 */
import {execFileSync} from 'node:child_process'
import {chmodSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import Docker from 'dockerode'

import {dockerEngine} from '../test/env/docker.js'
import {dockerfileImage} from '../test/helpers/docker.js'
import {fixture, tempDir} from '../test/helpers/stores.js'
import {BIN, fmt, median, time} from './lib.js'

const {values} = parseArgs({options: {runs: {type: 'string', default: '9'}}})
const runs = Number(values.runs)
const {dockerHost} = dockerEngine()
process.env.DOCKER_HOST = dockerHost
const env = {DOCKER_HOST: dockerHost}
const docker = new Docker()
const project = tempDir('mlops-bench-check-')
writeFileSync(join(project, 'mlops.yaml'), 'name: iris\nmodel:\n  name: iris\nimage:\n  repository: mlops-bench\n  tag: b\n')
const mlops = (...args: string[]) =>
  execFileSync(process.execPath, [BIN, ...args], {
    cwd: project,
    env: {...process.env, ...env},
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
const timed = async (...args: string[]) => time(process.execPath, [BIN, ...args], env, project)

mlops('image', 'build', 'api')
const api = 'mlops-bench/api:b'
const images = [api]
for (let i = 2; i <= 5; i++) {
  await dockerfileImage(docker, `mlops-bench/api:b${i}`, `FROM ${api}\nLABEL io.mlops.bench="${i}"\n`)
  images.push(`mlops-bench/api:b${i}`)
}

const models = ['iris_svc.onnx', 'iris_rf.onnx', 'iris_logreg.onnx']
for (let v = 0; v < 10; v++)
  mlops(
    'model',
    'push',
    fixture(models[v % models.length]),
    '--labels',
    fixture('iris_labels.json'),
    '--reference',
    fixture('iris_reference.csv'),
  )

// The bare container's files: what the loader would leave in /workdir.
const workdir = join(project, 'workdir')
mlops('model', 'pull', 'iris@1', '--to', `${workdir}/`, '--labels-to', `${workdir}/`, '--reference-to', `${workdir}/`)
chmodSync(workdir, 0o755)
const sha256 = JSON.parse(mlops('model', 'show', 'iris@1', '--json')).sha256 as string
const bare = async () =>
  time(
    'docker',
    [
      'run',
      '--rm',
      '--network',
      'none',
      '-v',
      `${workdir}:/workdir:ro`,
      ...['MODEL_FILEPATH=/workdir/model.onnx', 'LABEL_FILEPATH=/workdir/labels.json', 'MODEL_REFERENCE_FILEPATH=/workdir/reference.json']
        .concat([`MODEL_SHA256=${sha256}`, 'MODEL_NAME=iris', 'MODEL_VERSION=1'])
        .flatMap(e => ['-e', e]),
      api,
      '--check',
      '--json',
    ],
    env,
  )

const check: number[] = []
const baseline: number[] = []
await bare()
await timed('image', 'check', '--model', 'iris@1', '--image', api)
for (let i = 0; i < runs; i++) {
  baseline.push(await bare())
  check.push(await timed('image', 'check', '--model', 'iris@1', '--image', api))
}

const fill = process.hrtime.bigint()
for (const image of images) for (let v = 1; v <= 10; v++) mlops('image', 'check', '--model', `iris@${v}`, '--image', image)
const fillSeconds = Number(process.hrtime.bigint() - fill) / 1e9

const matrix: number[] = []
const list: number[] = []
for (let i = 0; i < runs; i++) {
  list.push(await timed('model', 'list', 'iris'))
  matrix.push(await timed('image', 'check', '--matrix'))
}

const cells = JSON.parse(mlops('image', 'check', '--matrix', '--json')).cells.length as number
console.log(`runs: ${runs} (median each)`)
console.log(`| one check in the API image (1,000-row reference set) | bare docker run ... --check | mlops image check --image | ratio |`)
console.log(`| | ${fmt(median(baseline))} | ${fmt(median(check))} | **${(median(check) / median(baseline)).toFixed(2)}** |`)
console.log(
  `matrix filled: 5 images × 10 versions = ${cells} cells in ${fillSeconds.toFixed(1)} s (${(fillSeconds / 50).toFixed(3)} s per check)`,
)
console.log(`| print the matrix | mlops model list iris | mlops image check --matrix | ratio |`)
console.log(`| | ${fmt(median(list))} | ${fmt(median(matrix))} | **${(median(matrix) / median(list)).toFixed(2)}** |`)
for (const image of images.slice(1))
  await docker
    .getImage(image)
    .remove({force: true})
    .catch(() => {})
