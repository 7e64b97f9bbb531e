import {spawn} from 'node:child_process'
import {join} from 'node:path'

import {fixture} from '../test/helpers/stores.js'

export const BIN = join(import.meta.dirname, '..', 'bin', 'run.js')

/** Wall time of one command in seconds; throws on a non-zero exit. */
export async function time(command: string, args: string[], env: Record<string, string> = {}, cwd?: string): Promise<number> {
  const started = process.hrtime.bigint()
  await new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, {env: {...process.env, ...env}, cwd, stdio: ['ignore', 'ignore', 'pipe']})
    let stderr = ''
    child.stderr.on('data', chunk => {
      stderr += chunk
    })
    child.on('error', reject)
    child.on('close', code => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr}`))))
  })
  return Number(process.hrtime.bigint() - started) / 1e9
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

export function fmt(seconds: number): string {
  return `${seconds.toFixed(3)} s`
}

/** `mlops serve` of the iris SVC fixture on 127.0.0.1:port, one process (bench/serve-workers.ts measures workers): the server the serving benches load. */
export function irisServeArgs(port: number): string[] {
  return [
    BIN,
    'serve',
    '--model',
    fixture('iris_svc.onnx'),
    '--labels',
    fixture('iris_labels.json'),
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--workers',
    '1',
  ]
}
