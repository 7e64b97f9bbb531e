import {spawn} from 'node:child_process'
import {closeSync, openSync, readFileSync} from 'node:fs'
import {mkdir, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'

import {NotFoundError, RolloutError} from '../errors.js'
import {type ProjectState, readState, updateState} from '../images/state.js'
import type {ModelStore} from '../store/model-store.js'
import type {ModelRef} from '../store/names.js'

const BIN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

export type LocalDeployment = NonNullable<ProjectState['local']>

/**
 * The model-load pattern on this machine, nothing but Node: the loader step
 * (a verified pull into a work folder), then `mlops serve` as a background
 * process on 127.0.0.1, ready only once /ready answers 200. The process is
 * recorded in .mlops/state.json so that status, predict and delete find it.
 */
export async function deployLocal(projectDir: string, store: ModelStore, ref: ModelRef, options: {timeoutMs: number; port: number; onProgress?: (text: string) => void}): Promise<LocalDeployment & {unchanged: boolean}> {
  const workdir = join(projectDir, '.mlops', 'local', 'workdir')
  const previous = (await readState(projectDir)).local
  const manifest = await store.resolve(ref)
  if (previous && processAlive(previous.pid) && previous.sha256 === manifest.sha256 && await ready(previous.url)) return {...previous, unchanged: true}

  options.onProgress?.(`Pulling ${manifest.name}@${manifest.version}`)
  await mkdir(workdir, {recursive: true})
  await store.pull({ref: {name: manifest.name, ref: manifest.version}, destination: join(workdir, 'model.onnx'), labelsDestination: manifest.labels ? join(workdir, 'labels.json') : undefined})
  if (previous) await stopProcess(previous.pid)

  const log = join(projectDir, '.mlops', 'local', 'serve.log')
  const out = openSync(log, 'w')
  const child = spawn(process.execPath, [
    BIN, 'serve', '--model', join(workdir, 'model.onnx'), ...(manifest.labels ? ['--labels', join(workdir, 'labels.json')] : []),
    '--name', manifest.name, '--model-version', manifest.version, '--host', '127.0.0.1', '--port', String(options.port), '--log-format', 'json',
  ], {detached: true, stdio: ['ignore', out, out]})
  closeSync(out)
  child.unref()
  const pid = child.pid!
  options.onProgress?.(`Starting mlops serve (pid ${pid})`)
  const deadline = Date.now() + options.timeoutMs
  let url: string | undefined
  while (Date.now() < deadline) {
    url ??= listeningUrl(log)
    if (url && await ready(url)) {
      const deployment: LocalDeployment = {pid, url, model: `${manifest.name}@${manifest.version}`, sha256: manifest.sha256, workdir, log, startedAt: new Date().toISOString()}
      await updateState(projectDir, state => {
        state.local = deployment
      })
      return {...deployment, unchanged: false}
    }

    if (!processAlive(pid)) throw new RolloutError(`mlops serve exited before it was ready: ${lastLines(log)}`, {suggestion: `the whole log is in ${log}`})
    await sleep(50)
  }

  await stopProcess(pid)
  throw new RolloutError(`mlops serve was not ready within ${Math.round(options.timeoutMs / 1000)}s: ${lastLines(log)}`, {suggestion: `the whole log is in ${log}`})
}

export async function localStatus(projectDir: string): Promise<LocalDeployment & {running: boolean; ready: boolean}> {
  const deployment = (await readState(projectDir)).local
  if (!deployment) throw new NotFoundError('nothing is deployed on the local target', {suggestion: 'mlops deploy --target local'})
  const running = processAlive(deployment.pid)
  return {...deployment, running, ready: running && await ready(deployment.url)}
}

export async function deleteLocal(projectDir: string): Promise<LocalDeployment> {
  const deployment = (await readState(projectDir)).local
  if (!deployment) throw new NotFoundError('nothing is deployed on the local target')
  await stopProcess(deployment.pid)
  await rm(deployment.workdir, {recursive: true, force: true})
  await updateState(projectDir, state => {
    delete state.local
  })
  return deployment
}

/** Ends the recorded server: SIGTERM (it finishes in-flight requests), SIGKILL after 10 s. Only our own mlops serve. */
async function stopProcess(pid: number): Promise<void> {
  if (!processAlive(pid) || !isOurServer(pid)) return
  process.kill(pid, 'SIGTERM')
  for (let waited = 0; waited < 10_000 && processAlive(pid); waited += 50) await sleep(50)
  if (processAlive(pid)) process.kill(pid, 'SIGKILL')
}

function isOurServer(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('serve')
  } catch {
    return true
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0]
    return state !== 'Z'
  } catch {
    return false
  }
}

async function ready(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/ready`, {signal: AbortSignal.timeout(2000)})).ok
  } catch {
    return false
  }
}

function listeningUrl(log: string): string | undefined {
  try {
    const line = readFileSync(log, 'utf8').split('\n').find(l => l.includes('"msg":"listening"'))
    return line ? (JSON.parse(line) as {url: string}).url : undefined
  } catch {
    return undefined
  }
}

function lastLines(log: string): string {
  try {
    return readFileSync(log, 'utf8').trim().split('\n').slice(-3).map(line => {
      try {
        const parsed = JSON.parse(line) as {msg?: string; error?: string}
        return [parsed.msg, parsed.error].filter(Boolean).join(': ')
      } catch {
        return line
      }
    }).join(' | ')
  } catch {
    return 'no log'
  }
}
