import {spawn} from 'node:child_process'
import {join} from 'node:path'

import {tempDir} from './stores.js'

const bin = join(import.meta.dirname, '..', '..', 'bin', 'run.js')

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/** The real CLI in a child process, as a user or CI runs it (no TTY). */
export async function runCli(args: string[], env: Record<string, string> = {}, cwd = tempDir()): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {cwd, env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', chunk => {
      stdout += chunk
    })
    child.stderr.on('data', chunk => {
      stderr += chunk
    })
    child.on('error', reject)
    child.on('close', code => resolve({code, stdout, stderr}))
  })
}

