#!/usr/bin/env node
// The main flow on the embedded defaults: no cloud, no cluster, nothing to
// configure. Runs in a temporary folder with a local store and removes it.
import {execFileSync} from 'node:child_process'
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

try {
  console.log(`Working in ${work} (store: ${join(work, '.mlops', 'store')})`)
  mlops('model', 'push', join(sample, 'iris_svc.onnx'), '--name', 'iris', '--labels', join(sample, 'labels.json'), '--meta', 'dataset=iris')
  mlops('model', 'alias', 'set', 'iris@1', 'prod')
  mlops('model', 'list', 'iris')
  mlops('model', 'show', 'iris@prod')
  mlops('model', 'pull', 'iris@prod', '--to', 'workdir/model.onnx', '--labels-to', 'workdir/labels.json')
  mlops('model', 'pull', 'iris@prod', '--to', 'workdir/model.onnx')
  console.log('\nQuickstart finished: pushed, aliased, inspected and pulled a verified model on the local store.')
} catch (error) {
  console.error(`\nQuickstart failed: ${error.message.split('\n')[0]}`)
  process.exitCode = 1
} finally {
  rmSync(work, {recursive: true, force: true})
}
