/**
 * The loader and API images: sizes against the base image, cold build time
 * against a rebuild after one source file changed (layer caching), and the
 * loader container's lead time (container start to model verified in the
 * volume) for a 256 MiB model from fake-gcs-server, against curl downloading
 * the same object on the host, in the same run.
 *
 *   npm run build && npx tsx bench/images.ts [--mib 256]
 */
import Docker from 'dockerode'
import {execFileSync} from 'node:child_process'
import {rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {inspectModelFile} from '../src/store/model-file.js'
import {dockerEngine, stopDockerEngine} from '../test/env/docker.js'
import {FakeGcs} from '../test/env/fake-gcs.js'
import {writeSyntheticOnnx} from '../test/helpers/onnx-writer.js'
import {makeStore, tempDir} from '../test/helpers/stores.js'
import {BIN, median, time} from './lib.js'

const {values} = parseArgs({options: {mib: {type: 'string', default: '256'}, runs: {type: 'string', default: '3'}}})
const engine = dockerEngine()
process.env.DOCKER_HOST = engine.dockerHost
const docker = new Docker()
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`
const build = (component: string, tag: string) =>
  time(process.execPath, [BIN, 'image', 'build', component, '--repository', 'mlops-bench', '--tag', tag], {CI: '1'})

// Cold: no build cache, no earlier image of ours.
for (const component of ['loader', 'api'])
  await docker
    .getImage(`mlops-bench/${component}:cold`)
    .remove({force: true})
    .catch(() => {})
await docker.pruneBuilder().catch(() => {})
await docker.pruneImages({filters: {dangling: {true: true}}})
const cold = {loader: await build('loader', 'cold'), api: await build('api', 'cold')}
// One source file changes (a new file under dist/, which the images copy): only the last layers rebuild.
const touched = join(import.meta.dirname, '..', 'dist', 'bench-touch.js')
writeFileSync(touched, `// ${Date.now()}\n`)
const rebuild = {loader: await build('loader', 'warm'), api: await build('api', 'warm')}
rmSync(touched)

const size = async (ref: string) => (await docker.getImage(ref).inspect()).Size
const base = await size(engine.baseImage)
const loaderSize = await size('mlops-bench/loader:cold')
const apiSize = await size('mlops-bench/api:cold')

// Lead time of the loader container against curl on the host.
const gcs = await FakeGcs.start()
const store = await makeStore('gcs', {}, gcs)
const dir = tempDir()
writeSyntheticOnnx(join(dir, 'big.onnx'), Number(values.mib) * 1024 * 1024)
await store.store.push({model: await inspectModelFile(join(dir, 'big.onnx')), name: 'big', metadata: {}, workDir: dir})
const objectUrl = `${gcs.url}/storage/v1/b/${store.uri.slice(5).split('/')[0]}/o/${encodeURIComponent('models/big/1/model.onnx')}?alt=media`
const loaderRuns: number[] = []
const curlRuns: number[] = []
// Where the loader's time goes: the same container doing nothing (node -e 0), and
// the same pull by the CLI on the host, both in the same loop.
const emptyRuns: number[] = []
const hostPullRuns: number[] = []
for (let run = 0; run < Number(values.runs); run++) {
  const volume = `mlops-bench-${Date.now()}`
  await docker.createVolume({Name: volume})
  const chmod = await docker.createContainer({
    Image: 'mlops-bench/loader:cold',
    User: 'root',
    Entrypoint: ['chmod', '0777', '/workdir'],
    HostConfig: {NetworkMode: 'host', Binds: [`${volume}:/workdir`]},
  })
  await chmod.start()
  await chmod.wait()
  await chmod.remove()
  const container = await docker.createContainer({
    Image: 'mlops-bench/loader:cold',
    Cmd: ['big@1', '--to', '/workdir/model.onnx'],
    Env: [`MLOPS_STORE=${store.uri}`, `MLOPS_GCS_ENDPOINT=${gcs.url}`],
    HostConfig: {NetworkMode: 'host', Binds: [`${volume}:/workdir`]},
  })
  const started = performance.now()
  await container.start()
  const {StatusCode} = await container.wait()
  loaderRuns.push((performance.now() - started) / 1000)
  if (StatusCode !== 0) throw new Error(`loader exited ${StatusCode}`)
  await container.remove()
  await docker.getVolume(volume).remove()
  const out = join(dir, 'curl.onnx')
  curlRuns.push(await time('curl', ['-sS', '--fail', '-o', out, objectUrl]))
  rmSync(out)
  const empty = await docker.createContainer({
    Image: 'mlops-bench/loader:cold',
    Entrypoint: ['node', '-e', '0'],
    HostConfig: {NetworkMode: 'host'},
  })
  const emptyStarted = performance.now()
  await empty.start()
  await empty.wait()
  emptyRuns.push((performance.now() - emptyStarted) / 1000)
  await empty.remove()
  const hostOut = join(dir, 'host-pull', 'model.onnx')
  hostPullRuns.push(
    await time(process.execPath, [BIN, 'model', 'pull', 'big@1', '--to', hostOut], {
      MLOPS_STORE: store.uri,
      MLOPS_GCS_ENDPOINT: gcs.url,
      CI: '1',
    }),
  )
  rmSync(join(dir, 'host-pull'), {recursive: true, force: true})
}

await gcs.stop()
stopDockerEngine()
rmSync(dir, {recursive: true, force: true})
execFileSync('true')

console.log('| image | size | added to the base | target |')
console.log('|---|---|---|---|')
console.log(`| ${engine.baseImage} (stand-in for node:20-slim) | ${mb(base)} | | |`)
console.log(`| loader | ${mb(loaderSize)} | ${mb(loaderSize - base)} | < 160 MB |`)
console.log(`| api | ${mb(apiSize)} | ${mb(apiSize - base)} | < 260 MB |`)
console.log('\n| image | cold build | rebuild after one source file | rebuild / cold |')
console.log('|---|---|---|---|')
for (const component of ['loader', 'api'] as const) {
  console.log(
    `| ${component} | ${cold[component].toFixed(1)} s | ${rebuild[component].toFixed(1)} s | ${(rebuild[component] / cold[component]).toFixed(2)} |`,
  )
}

console.log(
  `\nloader lead time, container start to ${values.mib} MiB model verified in the volume: median ${median(loaderRuns).toFixed(2)} s;` +
    ` curl on the host: ${median(curlRuns).toFixed(2)} s; curl / loader = ${(median(curlRuns) / median(loaderRuns)).toFixed(2)} (${values.runs} runs)`,
)
console.log(
  `where it goes (medians): the same container running node -e 0: ${median(emptyRuns).toFixed(2)} s;` +
    ` mlops model pull of the same model on the host: ${median(hostPullRuns).toFixed(2)} s (curl / host pull = ${(median(curlRuns) / median(hostPullRuns)).toFixed(2)});` +
    ` loader minus empty container: ${(median(loaderRuns) - median(emptyRuns)).toFixed(2)} s`,
)
