/**
 * `mlops serve --workers N` against the original Python model-load server
 * (FastAPI under gunicorn with N uvicorn workers, the usual way) in the same
 * run: requests/s on POST /predict/label with one row, at 1, 2 and 4 workers
 * (those the cores allow). The Python app is generated into a temporary
 * folder with its own venv (pip install fastapi gunicorn uvicorn onnxruntime
 * numpy); it answers the argmax of the SVC's ZipMap probabilities, and mlops
 * runs with --label-from argmax to do the same work. The load generator
 * (autocannon, keep-alive) runs in its own process pinned to core 0 with
 * taskset where taskset exists; the servers are not pinned.
 *
 *   npx tsx bench/serve-workers.ts [--seconds 10] [--connections 32]
 */
import {type ChildProcess, execFileSync, spawn} from 'node:child_process'
import {mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import {availableParallelism, tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {freePort, waitFor} from '../test/env/ports.js'
import {fixture} from '../test/helpers/stores.js'
import {BIN} from './lib.js'

const {values} = parseArgs({options: {seconds: {type: 'string', default: '10'}, connections: {type: 'string', default: '32'}}})
const seconds = Number(values.seconds)
const connections = Number(values.connections)
const body = JSON.stringify({data: [[6.3, 3.3, 6, 2.5]]})
const AUTOCANNON = join(import.meta.dirname, '..', 'node_modules', 'autocannon', 'autocannon.js')

/** The original server's shape: one onnxruntime session per worker, argmax of the ZipMap's probabilities. */
const PYTHON_APP = `import os

import numpy as np
import onnxruntime as rt
from fastapi import FastAPI
from pydantic import BaseModel

session = rt.InferenceSession(os.environ["MODEL_FILEPATH"], providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
probabilities = session.get_outputs()[1].name
app = FastAPI()


class Data(BaseModel):
    data: list


@app.post("/predict/label")
def predict_label(request: Data):
    rows = np.array(request.data, dtype=np.float32)
    maps = session.run([probabilities], {input_name: rows})[0]
    labels = [max(m, key=m.get) for m in maps]
    return {"prediction": labels[0] if len(labels) == 1 else labels}
`

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-c', '0', 'true'])
    return true
  } catch {
    return false
  }
}

const pinned = hasTaskset()

async function generateLoad(url: string, duration: number): Promise<{rps: number; p50: number; p99: number; bad: number}> {
  const args = [AUTOCANNON, '-j', '-c', String(connections), '-d', String(duration), '-m', 'POST']
  args.push('-H', 'content-type=application/json', '-b', body, `${url}/predict/label`)
  const [command, commandArgs] = pinned ? ['taskset', ['-c', '0', process.execPath, ...args]] : [process.execPath, args]
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(command, commandArgs, {stdio: ['ignore', 'pipe', 'ignore']})
    let stdout = ''
    child.stdout.on('data', chunk => {
      stdout += chunk
    })
    child.on('error', reject)
    child.on('close', code => (code === 0 ? resolve(stdout) : reject(new Error(`autocannon exited ${code}`))))
  })
  const result = JSON.parse(output) as {
    requests: {average: number}
    latency: {p50: number; p99: number}
    non2xx: number
    errors: number
  }
  return {rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, bad: result.non2xx + result.errors}
}

/** RSS of a process and all its descendants, in MiB. */
function treeRssMiB(pid: number): number {
  const parents = new Map<number, number>()
  for (const entry of readdirSync('/proc').filter(e => /^\d+$/.test(e))) {
    try {
      parents.set(Number(entry), Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1].split(' ')[1]))
    } catch {
      // gone meanwhile
    }
  }

  const tree = [pid]
  for (let i = 0; i < tree.length; i++) for (const [child, parent] of parents) if (parent === tree[i]) tree.push(child)
  let kib = 0
  for (const member of tree) {
    try {
      kib += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${member}/status`, 'utf8'))![1])
    } catch {
      // gone meanwhile
    }
  }

  return kib / 1024
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise(resolve => {
    child.once('exit', resolve)
  })
  child.kill('SIGTERM')
  await exited
}

async function measure(name: string, start: (port: number) => ChildProcess): Promise<{rps: number; p50: number; p99: number; rss: number}> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const child = start(port)
  try {
    await waitFor(
      async () => (await fetch(`${url}/predict/label`, {method: 'POST', headers: {'content-type': 'application/json'}, body})).ok,
      `${name} answering`,
      120_000,
    )
    await generateLoad(url, 2)
    const result = await generateLoad(url, seconds)
    if (result.bad > 0) throw new Error(`${name}: ${result.bad} non-2xx answers or errors`)
    return {...result, rss: treeRssMiB(child.pid!)}
  } finally {
    await stop(child)
  }
}

const temp = mkdtempSync(join(tmpdir(), 'mlops-bench-workers-'))
try {
  writeFileSync(join(temp, 'app.py'), PYTHON_APP)
  execFileSync('python3', ['-m', 'venv', join(temp, 'venv')])
  execFileSync(join(temp, 'venv', 'bin', 'pip'), ['install', '-q', 'fastapi', 'gunicorn', 'uvicorn', 'onnxruntime', 'numpy'], {
    stdio: 'inherit',
  })
  const versions = execFileSync(
    join(temp, 'venv', 'bin', 'python'),
    [
      '-c',
      'import fastapi, gunicorn, uvicorn, onnxruntime; print(f"fastapi {fastapi.__version__}, gunicorn {gunicorn.__version__}, uvicorn {uvicorn.__version__}, onnxruntime {onnxruntime.__version__}")',
    ],
    {encoding: 'utf8'},
  ).trim()

  const cores = availableParallelism()
  const rows: string[] = []
  let mlopsOne = 0
  let pythonOne = 0
  for (const workers of [1, 2, 4].filter(n => n <= cores)) {
    const mlops = await measure(`mlops serve --workers ${workers}`, port =>
      spawn(
        process.execPath,
        [BIN, 'serve', '--model', fixture('iris_svc.onnx'), '--label-from', 'argmax', '--host', '127.0.0.1', '--port', String(port)],
        {env: {...process.env, MLOPS_WORKERS: String(workers)}, stdio: 'ignore'},
      ),
    )
    const python = await measure(`gunicorn -w ${workers}`, port =>
      spawn(
        join(temp, 'venv', 'bin', 'gunicorn'),
        ['-w', String(workers), '-k', 'uvicorn.workers.UvicornWorker', '-b', `127.0.0.1:${port}`, '--log-level', 'warning', 'app:app'],
        {cwd: temp, env: {...process.env, MODEL_FILEPATH: fixture('iris_svc.onnx')}, stdio: 'ignore'},
      ),
    )
    if (workers === 1) {
      mlopsOne = mlops.rps
      pythonOne = python.rps
    }

    const cells = [
      workers,
      mlops.rps.toFixed(0),
      `${mlops.p50} / ${mlops.p99} ms`,
      `${mlops.rss.toFixed(0)} MiB`,
      python.rps.toFixed(0),
      `${python.p50} / ${python.p99} ms`,
      `${python.rss.toFixed(0)} MiB`,
      `**${(mlops.rps / python.rps).toFixed(2)}×**`,
      `${(mlops.rps / mlopsOne).toFixed(2)}× / ${(python.rps / pythonOne).toFixed(2)}×`,
    ]
    rows.push(`| ${cells.join(' | ')} |`)
  }

  console.log(
    `SVC fixture, POST /predict/label with one row, ${connections} keep-alive connections, ${seconds} s per level after 2 s of warm-up;`,
    `${cores} cores; load generator ${pinned ? 'pinned to core 0 (taskset)' : 'not pinned (no taskset)'}; ${versions}`,
  )
  const header = ['workers', 'mlops req/s', 'mlops p50 / p99', 'mlops RSS, all processes', 'Python req/s', 'Python p50 / p99']
  header.push('Python RSS, all processes', 'mlops / Python', 'scaling vs 1 worker (mlops / Python)')
  console.log(`| ${header.join(' | ')} |`)
  console.log(`|${header.map(() => '---').join('|')}|`)
  for (const row of rows) console.log(row)
} finally {
  rmSync(temp, {recursive: true, force: true})
}
