#!/usr/bin/env node
// The main flow on the embedded defaults: no cloud, no cluster, nothing to
// configure. Runs in a temporary folder with a local store and removes it.
import {execFileSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
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

try {
  console.log(`Working in ${work} (store: ${join(work, '.mlops', 'store')})`)
  writeFileSync(join(work, 'mlops.yaml'), 'name: iris\nmodel:\n  name: iris\n')
  console.log('mlops.yaml: name: iris, model.name: iris (everything else: the embedded defaults)')
  mlops('model', 'push', join(sample, 'iris_svc.onnx'), '--name', 'iris', '--labels', join(sample, 'labels.json'), '--meta', 'dataset=iris')
  mlops('model', 'alias', 'set', 'iris@1', 'prod')
  mlops('model', 'list', 'iris')
  mlops('model', 'show', 'iris@prod')
  mlops('model', 'pull', 'iris@prod', '--to', 'workdir/model.onnx', '--labels-to', 'workdir/labels.json')
  mlops('model', 'pull', 'iris@prod', '--to', 'workdir/model.onnx')
  mlops('deploy', '--model', 'iris@prod')
  mlops('status')
  mlops('predict', '--data', '[[6.3, 3.3, 6.0, 2.5]]', '--expect', 'virginica')
  mlops('predict', '--data', '[[6.3, 3.3, 6.0, 2.5]]', '-n', '500', '--concurrency', '8')
  mlops('delete')
  console.log('\nQuickstart finished: pushed, aliased and inspected a model, pulled it verified as the loader does, deployed it on the local target (loader step + mlops serve), predicted and measured latency, and removed it.')
} catch (error) {
  console.error(`\nQuickstart failed: ${error.message.split('\n')[0]}`)
  process.exitCode = 1
  try {
    execFileSync(process.execPath, [bin, 'delete'], {cwd: work, stdio: 'ignore'})
  } catch {
    // nothing was deployed
  }
} finally {
  rmSync(work, {recursive: true, force: true})
}
