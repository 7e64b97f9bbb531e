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
const work = mkdtempSync(join(tmpdir(), 'mlops-quickstart-'))
const project = join(work, 'iris')

function mlops(...args) {
  const cwd = args[0] === 'init' ? work : project
  console.log(`\n$ mlops ${args.map(arg => (/[\s[\]]/.test(arg) ? `'${arg}'` : arg)).join(' ')}`)
  execFileSync(process.execPath, [bin, ...args], {cwd, stdio: 'inherit'})
}

try {
  console.log(`Working in ${work} (the project: ${project}, its store: ${join(project, '.mlops', 'store')})`)
  mlops('init', 'iris', '--yes')
  console.log(`\n$ cd iris`)
  mlops(
    'model',
    'push',
    'model/model.onnx',
    '--name',
    'iris',
    '--labels',
    'model/labels.json',
    '--reference',
    'model/reference.csv',
    '--meta',
    'dataset=iris',
  )
  mlops('model', 'alias', 'set', 'iris@1', 'prod')
  mlops('model', 'list', 'iris')
  mlops('model', 'show', 'iris@prod')
  mlops('model', 'pull', 'iris@prod', '--to', 'workdir/model.onnx', '--labels-to', 'workdir/labels.json')
  mlops('model', 'pull', 'iris@prod', '--to', 'workdir/model.onnx')
  mlops('deploy', '--model', 'iris@prod')
  mlops('status')
  mlops('predict', '--data', '[[6.3, 3.3, 6.0, 2.5]]', '--expect', 'virginica')
  mlops('predict', '--data', '[[6.3, 3.3, 6.0, 2.5]]', '-n', '500', '--concurrency', '8')
  mlops('model', 'compare', 'iris@prod', '--min-agreement', '1', '--max-delta', '0')
  mlops('delete')
  console.log(
    '\nQuickstart finished: scaffolded a project, pushed, aliased and inspected a model, pulled it verified as the loader does,' +
      ' deployed it on the local target (loader step + mlops serve), predicted and measured latency,' +
      ' compared the deployment with the reference rows pushed with the model, and removed it.',
  )
} catch (error) {
  console.error(`\nQuickstart failed: ${error.message.split('\n')[0]}`)
  process.exitCode = 1
  try {
    execFileSync(process.execPath, [bin, 'delete'], {cwd: project, stdio: 'ignore'})
  } catch {
    // nothing was deployed
  }
} finally {
  rmSync(work, {recursive: true, force: true})
}
