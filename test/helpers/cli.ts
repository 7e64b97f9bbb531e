import {type ChildProcess, spawn} from 'node:child_process'
import {join} from 'node:path'

import {freePort, waitFor} from '../env/ports.js'
import {checkJsonOutput} from './json-output.js'
import {fixture, tempDir} from './stores.js'

const bin = join(import.meta.dirname, '..', '..', 'bin', 'run.js')

export interface CliOptions {
  /** SIGKILL the command when it runs longer than this. */
  timeoutMs?: number
  /** Bytes piped to the command's stdin, which then ends. */
  input?: string
}

export interface Run {
  /** null when it was killed (by `timeoutMs`, or a signal). */
  code: number | null
  stdout: string
  stderr: string
}

/**
 * The real CLI in a child process, as a user or CI runs it (no TTY); the
 * child is there to signal (Ctrl-C is SIGINT). With `timeoutMs` it is
 * SIGKILLed when it runs longer: a command must never hang. With `input`,
 * stdin is a pipe that carries it and then ends (`echo ... | mlops ...`);
 * without, stdin is /dev/null. A --json output is checked against its
 * documented shape (json-output.ts).
 */
export function startCli(
  args: string[],
  env: Record<string, string> = {},
  cwd = tempDir(),
  options: CliOptions = {},
): {child: ChildProcess; done: Promise<Run>} {
  const started = startProcess(process.execPath, [bin, ...args], env, cwd, options)
  return {
    child: started.child,
    done: started.done.then(run => {
      checkJsonOutput(args, run)
      return run
    }),
  }
}

/** Any command in a child process, its output collected, as startCli runs the CLI. */
export function startProcess(
  command: string,
  args: string[],
  env: Record<string, string> = {},
  cwd = tempDir(),
  options: CliOptions = {},
): {child: ChildProcess; done: Promise<Run>} {
  const child = spawn(command, args, {
    cwd,
    env: {...process.env, ...env},
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  })
  if (options.input !== undefined) {
    // A command that exits without reading all of it closes the pipe: not the test's failure.
    child.stdin!.on('error', () => {})
    child.stdin!.end(options.input)
  }

  const done = new Promise<Run>((resolve, reject) => {
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', chunk => {
      stdout += chunk
    })
    child.stderr!.on('data', chunk => {
      stderr += chunk
    })
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs)
    child.on('error', reject)
    child.on('close', code => {
      clearTimeout(timer)
      resolve({code, stdout, stderr})
    })
  })
  return {child, done}
}

export async function runCli(args: string[], env: Record<string, string> = {}, cwd = tempDir(), options: CliOptions = {}): Promise<Run> {
  return startCli(args, env, cwd, options).done
}

/** `mlops serve` of the iris SVC fixture on 127.0.0.1, ready; kill it with SIGTERM when done. */
export async function startIrisServer(): Promise<{url: string; port: number; server: ChildProcess}> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const args = [
    'serve',
    '--model',
    fixture('iris_svc.onnx'),
    '--labels',
    fixture('iris_labels.json'),
    '--name',
    'iris',
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
  ]
  const server = spawn(process.execPath, [bin, ...args], {stdio: 'ignore'})
  await waitFor(async () => (await fetch(`${url}/ready`)).ok, 'mlops serve ready')
  return {url, port, server}
}
