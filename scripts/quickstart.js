#!/usr/bin/env node
// The main flow on the embedded defaults: no cloud, no cluster, nothing to
// configure. Runs in a temporary folder with a local store and removes it.
import {execFileSync, spawn} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const bin = join(root, 'bin', 'run.js')
const sample = join(root, 'templates', 'sample-model')
const work = mkdtempSync(join(tmpdir(), 'mlops-quickstart-'))

function mlops(...args) {
  console.log(`\n$ mlops ${args.join(' ')}`)
  execFileSync(process.execPath, [bin, ...args], {cwd: work, stdio: 'inherit'})
}

/** The API container's half of the pattern: serve what the loader pulled, ask it for a prediction, stop it. */
async function serveAndPredict() {
  const args = ['serve', '--model', 'workdir/model.onnx', '--labels', 'workdir/labels.json', '--host', '127.0.0.1', '--port', '0', '--log-format', 'json']
  console.log(`\n$ mlops ${args.join(' ')} &`)
  const server = spawn(process.execPath, [bin, ...args], {cwd: work, stdio: ['ignore', 'inherit', 'pipe']})
  try {
    const url = await new Promise((resolve, reject) => {
      let log = ''
      server.stderr.on('data', chunk => {
        log += chunk
        const line = log.split('\n').find(l => l.includes('"msg":"listening"'))
        if (line) resolve(JSON.parse(line).url)
      })
      server.once('exit', code => reject(new Error(`mlops serve exited with ${code}: ${log}`)))
    })
    for (let i = 0; i < 200 && !(await fetch(`${url}/ready`).then(r => r.ok, () => false)); i++) await new Promise(r => setTimeout(r, 50))
    const body = JSON.stringify({data: [[6.3, 3.3, 6.0, 2.5]]})
    console.log(`\n$ curl -X POST ${url}/predict/label -H 'content-type: application/json' -d '${body}'`)
    const answer = await fetch(`${url}/predict/label`, {method: 'POST', headers: {'content-type': 'application/json'}, body})
    console.log(await answer.text())
  } finally {
    server.kill('SIGTERM')
  }
}

try {
  console.log(`Working in ${work} (store: ${join(work, '.mlops', 'store')})`)
  mlops('model', 'push', join(sample, 'iris_svc.onnx'), '--name', 'iris', '--labels', join(sample, 'labels.json'), '--meta', 'dataset=iris')
  mlops('model', 'alias', 'set', 'iris@1', 'prod')
  mlops('model', 'list', 'iris')
  mlops('model', 'show', 'iris@prod')
  mlops('model', 'pull', 'iris@prod', '--to', 'workdir/model.onnx', '--labels-to', 'workdir/labels.json')
  mlops('model', 'pull', 'iris@prod', '--to', 'workdir/model.onnx')
  await serveAndPredict()
  console.log('\nQuickstart finished: pushed, aliased and inspected a model, pulled it verified as the loader does, served it and got a prediction.')
} catch (error) {
  console.error(`\nQuickstart failed: ${error.message.split('\n')[0]}`)
  process.exitCode = 1
} finally {
  rmSync(work, {recursive: true, force: true})
}
