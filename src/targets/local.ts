import {spawn} from 'node:child_process'
import {closeSync, openSync, readFileSync} from 'node:fs'
import {mkdir, readdir, rm} from 'node:fs/promises'
import {basename, join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {NotFoundError, RolloutError} from '../errors.js'
import {requireCompatible} from '../images/compat.js'
import {LABELS_PATH, LOG_EVENTS, MODEL_PATH, findLogEvent, isReady, parseLogLine, waitUntilReady} from '../pod/contract.js'
import {installedRuntimeSupport} from '../runtime/capabilities.js'
import {type LocalDeployment, readState, updateState} from '../state/project-state.js'
import type {ModelStore} from '../store/model-store.js'
import type {ModelRef} from '../store/names.js'
import {resolveDeployModel} from './deploy-model.js'
import {type Target, type TargetContext, liveness} from './target.js'
import {packagePath} from '../util/package-root.js'

const BIN = packagePath('bin', 'run.js')

/**
 * The model-load pattern on this machine, nothing but Node: the loader step
 * (a verified pull into a work folder of its own), then `mlops serve` as a
 * background process on 127.0.0.1, ready only once /ready answers 200. Like a
 * rolling update with maxUnavailable 0: the server that serves now is stopped
 * only once the new one is ready, and a failed deploy leaves it serving with
 * its own files (two versions never share a folder). The process is recorded
 * in .mlops/state.json so that status, predict and delete find it.
 */
export async function deployLocal(
  projectDir: string,
  store: ModelStore,
  ref: ModelRef,
  options: {timeoutMs: number; port: number; onProgress?: (text: string) => void},
): Promise<LocalDeployment & {unchanged: boolean}> {
  const previous = (await readState(projectDir)).local
  const manifest = await store.resolve(ref)
  const previousServes = previous !== undefined && processAlive(previous.pid)
  if (previous && previousServes && previous.sha256 === manifest.sha256 && (await isReady(previous.url)))
    return {...previous, unchanged: true}
  // A fixed port the current server holds cannot be bound twice: then, and only then, it stops first.
  if (previous && previousServes && options.port !== 0 && new URL(previous.url).port === String(options.port))
    await stopProcess(previous.pid)

  const root = join(projectDir, '.mlops', 'local')
  const workdir = join(root, `workdir-${Date.now().toString(36)}-${process.pid}`)
  const log = `${workdir}.log`
  options.onProgress?.(`Pulling ${manifest.name}@${manifest.version}`)
  await mkdir(workdir, {recursive: true})
  let pid: number | undefined
  try {
    // The pod's layout, under this deploy's own folder.
    const model = join(workdir, basename(MODEL_PATH))
    const labels = manifest.labels ? join(workdir, basename(LABELS_PATH)) : undefined
    await store.pull({ref: {name: manifest.name, ref: manifest.version}, destination: model, labelsDestination: labels})
    const out = openSync(log, 'w')
    const child = spawn(
      process.execPath,
      [
        BIN,
        'serve',
        '--model',
        model,
        ...(labels ? ['--labels', labels] : []),
        '--name',
        manifest.name,
        '--model-version',
        manifest.version,
        '--host',
        '127.0.0.1',
        '--port',
        String(options.port),
        '--log-format',
        'json',
        // A development loop on this machine: one process, one copy of the model, the fastest start.
        '--workers',
        '1',
      ],
      {detached: true, stdio: ['ignore', out, out]},
    )
    closeSync(out)
    child.unref()
    pid = child.pid!
    options.onProgress?.(`Starting mlops serve (pid ${pid})`)
    const url = await untilReady(pid, log, options.timeoutMs)
    const deployment: LocalDeployment = {
      pid,
      url,
      model: `${manifest.name}@${manifest.version}`,
      sha256: manifest.sha256,
      workdir,
      log,
      startedAt: new Date().toISOString(),
    }
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

async function untilReady(pid: number, log: string, timeoutMs: number): Promise<string> {
  let url: string | undefined
  const outcome = await waitUntilReady({
    url: () => (url ??= listeningUrl(log)),
    failure: async () => (processAlive(pid) ? undefined : 'exited'),
    timeoutMs,
  })
  if ('url' in outcome) return outcome.url
  const why = 'failure' in outcome ? 'exited before it was ready' : `was not ready within ${Math.round(timeoutMs / 1000)}s`
  throw new RolloutError(`mlops serve ${why}: ${lastLines(log)}; the server that was serving still is`, {
    suggestion: `the whole log is in ${log}`,
  })
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
  return {...deployment, running, ready: running && (await isReady(deployment.url))}
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

function listeningUrl(log: string): string | undefined {
  try {
    const url = findLogEvent(readFileSync(log, 'utf8'), LOG_EVENTS.listening)?.url
    return typeof url === 'string' ? url : undefined
  } catch {
    return undefined
  }
}

function lastLines(log: string): string {
  try {
    return readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .slice(-3)
      .map(line => {
        const parsed = parseLogLine(line) as {msg?: string; error?: string; message?: string} | undefined
        return parsed ? [parsed.msg, parsed.error ?? parsed.message].filter(Boolean).join(': ') : line
      })
      .join(' | ')
  } catch {
    return 'no log'
  }
}

/** The same pattern on this machine: the loader step, then mlops serve in the background. */
export function localTarget({project, io}: TargetContext): Target {
  return {
    async deploy(request) {
      const started = Date.now()
      const {store, manifest} = await resolveDeployModel(project, request, {cluster: false})
      const support = await installedRuntimeSupport()
      requireCompatible(manifest, support, `onnxruntime ${support.runtime}`, 'nothing was started')
      const progress = await io.progress()
      progress.start(`Deploying ${manifest.name}@${manifest.version} locally`)
      try {
        const deployed = await deployLocal(
          project.dir,
          store,
          {name: manifest.name, ref: manifest.version},
          {
            port: request.port,
            timeoutMs: request.timeoutMs ?? 120_000,
            onProgress: text => progress.text(text),
          },
        )
        progress.succeed(`Deployed ${deployed.model} locally`)
        io.log(
          `${deployed.model} ${deployed.unchanged ? 'already serving' : 'serving'} at ${deployed.url} (pid ${deployed.pid}, log ${deployed.log})`,
        )
        return {
          target: 'local',
          model: deployed.model,
          sha256: deployed.sha256,
          url: deployed.url,
          pid: deployed.pid,
          unchanged: deployed.unchanged,
          seconds: (Date.now() - started) / 1000,
        }
      } finally {
        progress.stop()
      }
    },

    async status() {
      const local = await localStatus(project.dir)
      io.log(
        `local: ${local.model} (sha256:${local.sha256.slice(0, 12)}) at ${local.url}, pid ${local.pid}, ${liveness(local)}\n  log ${local.log}`,
      )
      return {target: 'local', ...local}
    },

    async delete() {
      const stopped = await deleteLocal(project.dir)
      io.log(`stopped mlops serve (pid ${stopped.pid}, ${stopped.model}) and removed ${stopped.workdir}`)
      return {target: 'local', model: stopped.model, pid: stopped.pid}
    },

    async endpoint() {
      const deployment = (await readState(project.dir)).local
      if (!deployment)
        throw new NotFoundError('nothing is running on the local target', {
          suggestion: 'deploy first: mlops deploy --target local, or pass --url',
        })
      if (!processAlive(deployment.pid))
        throw new NotFoundError('the local server is no longer running', {suggestion: 'mlops deploy --target local'})
      return {url: deployment.url, close: async () => {}}
    },
  }
}
