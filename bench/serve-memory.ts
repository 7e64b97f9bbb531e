/**
 * `mlops serve`'s memory for a large model: peak and settled resident set
 * (VmHWM and VmRSS once /ready says 200), as ratios to the model's size (the
 * least a server holding the model can use), and the time to ready.
 *
 *   npm run build && npx tsx bench/serve-memory.ts [--mib 1024] [--bin bin/run.js]
 */
import {spawn} from 'node:child_process'
import {readFileSync, rmSync} from 'node:fs'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {writeSyntheticOnnx} from '../test/helpers/onnx-writer.js'
import {tempDir} from '../test/helpers/stores.js'
import {BIN} from './lib.js'

const {values} = parseArgs({options: {mib: {type: 'string', default: '1024'}, bin: {type: 'string', default: BIN}}})
const mib = Number(values.mib)
const dir = tempDir('mlops-bench-')
const model = join(dir, 'model.onnx')
writeSyntheticOnnx(model, mib << 20)
const started = Date.now()
const server = spawn(
  process.execPath,
  [values.bin, 'serve', '--model', model, '--port', '0', '--host', '127.0.0.1', '--log-format', 'json'],
  {stdio: ['ignore', 'ignore', 'pipe']},
)
let log = ''
server.stderr.on('data', chunk => {
  log += chunk
})
try {
  for (;;) {
    if (log.includes('"msg":"ready"')) break
    if (server.exitCode !== null) throw new Error(`serve exited: ${log}`)
    await new Promise(resolve => {
      setTimeout(resolve, 20)
    })
  }

  const seconds = (Date.now() - started) / 1000
  const status = readFileSync(`/proc/${server.pid}/status`, 'utf8')
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1])
  const peak = kib('VmHWM') / 1024
  const settled = kib('VmRSS') / 1024
  console.log(`mlops serve (${values.bin}) with a ${mib} MiB model: ready in ${seconds.toFixed(2)} s`)
  console.log('| | MiB | / model size |')
  console.log('|---|---|---|')
  console.log(`| peak resident set while loading | ${peak.toFixed(0)} | ${(peak / mib).toFixed(2)} |`)
  console.log(`| resident set once ready | ${settled.toFixed(0)} | ${(settled / mib).toFixed(2)} |`)
} finally {
  server.kill('SIGTERM')
  rmSync(dir, {recursive: true, force: true})
}
