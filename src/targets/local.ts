import {spawn} from 'node:child_process'
import {closeSync, openSync, readFileSync} from 'node:fs'
import {mkdir, readdir, rm} from 'node:fs/promises'
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
 * (a verified pull into a work folder of its own), then `mlops serve` as a
 * background process on 127.0.0.1, ready only once /ready answers 200. Like a
 * rolling update with maxUnavailable 0: the server that serves now is stopped
 * only once the new one is ready, and a failed deploy leaves it serving with
 * its own files (two versions never share a folder). The process is recorded
 * in .mlops/state.json so that status, predict and delete find it.
 */
export async function deployLocal(projectDir: string, store: ModelStore, ref: ModelRef, options: {timeoutMs: number; port: number; onProgress?: (text: string) => void}): Promise<LocalDeployment & {unchanged: boolean}> {
  const previous = (await readState(projectDir)).local
  const manifest = await store.resolve(ref)
  const previousServes = previous !== undefined && processAlive(previous.pid)
  if (previous && previousServes && previous.sha256 === manifest.sha256 && await ready(previous.url)) return {...previous, unchanged: true}
  // A fixed port the current server holds cannot be bound twice: then, and only then, it stops first.
  if (previous && previousServes && options.port !== 0 && new URL(previous.url).port === String(options.port)) await stopProcess(previous.pid)

  const root = join(projectDir, '.mlops', 'local')
  const workdir = join(root, `workdir-${Date.now().toString(36)}-${process.pid}`)
  const log = `${workdir}.log`
  options.onProgress?.(`Pulling ${manifest.name}@${manifest.version}`)
  await mkdir(workdir, {recursive: true})
  let pid: number | undefined
  try {
    await store.pull({ref: {name: manifest.name, ref: manifest.version}, destination: join(workdir, 'model.onnx'), labelsDestination: manifest.labels ? join(workdir, 'labels.json') : undefined})
    const out = openSync(log, 'w')
    const child = spawn(process.execPath, [
      BIN, 'serve', '--model', join(workdir, 'model.onnx'), ...(manifest.labels ? ['--labels', join(workdir, 'labels.json')] : []),
      '--name', manifest.name, '--model-version', manifest.version, '--host', '127.0.0.1', '--port', String(options.port), '--log-format', 'json',
    ], {detached: true, stdio: ['ignore', out, out]})
    closeSync(out)
    child.unref()
    pid = child.pid!
    options.onProgress?.(`Starting mlops serve (pid ${pid})`)
    const url = await waitUntilReady(pid, log, options.timeoutMs)
    const deployment: LocalDeployment = {pid, url, model: `${manifest.name}@${manifest.version}`, sha256: manifest.sha256, workdir, log, startedAt: new Date().toISOString()}
    await updateState(projectDir, state => {
      state.local = deployment
    })
    if (previous) await retire(previous)
    await removeAbandoned(root, deployment)
    return {...deployment, unchanged: false}
  } catch (error) {
    if (pid !== undefined) await stopProcess(pid)
    await rm(workdir, {recursive: true, force: true})
    throw error
  }
}

async function waitUntilReady(pid: number, log: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs
  let url: string | undefined
  while (Date.now() < deadline) {
    url ??= listeningUrl(log)
    if (url && await ready(url)) return url
    if (!processAlive(pid)) throw new RolloutError(`mlops serve exited before it was ready: ${lastLines(log)}; the server that was serving still is`, {suggestion: `the whole log is in ${log}`})
    await sleep(50)
  }

  throw new RolloutError(`mlops serve was not ready within ${Math.round(timeoutMs / 1000)}s: ${lastLines(log)}; the server that was serving still is`, {suggestion: `the whole log is in ${log}`})
}

/** Stops a replaced server and removes its files (a work folder from before per-deploy folders is removed too). */
async function retire(deployment: LocalDeployment): Promise<void> {
  await stopProcess(deployment.pid)
  await rm(deployment.workdir, {recursive: true, force: true})
}

/** Work folders and logs of deploys killed before they could clean up: not the live one. */
async function removeAbandoned(root: string, live: LocalDeployment): Promise<void> {
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const path = join(root, name)
    const pid = Number(/^workdir-[0-9a-z]+-(\d+)(\.log)?$/.exec(name)?.[1])
    // A deploy still running in another process keeps its folder.
    if (!pid || path === live.workdir || path === live.log || (pid !== process.pid && processAlive(pid))) continue
    await rm(path, {recursive: true, force: true})
  }
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
  await retire(deployment)
  await rm(deployment.log, {force: true})
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
        const parsed = JSON.parse(line) as {msg?: string; error?: string; message?: string}
        return [parsed.msg, parsed.error ?? parsed.message].filter(Boolean).join(': ')
      } catch {
        return line
      }
    }).join(' | ')
  } catch {
    return 'no log'
  }
}
