import {type ChildProcess, execFileSync, spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {closeSync, openSync, readFileSync, rmSync} from 'node:fs'
import {mkdir, readFile, readdir, rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {IntegrityError, NotFoundError, RolloutError} from '../errors.js'
import {requireCompatible} from '../images/compat.js'
import {
  API_ENV,
  LABELS_PATH,
  REFERENCE_PATH,
  serveRefusal,
  LOG_EVENTS,
  MODEL_PATH,
  findLogEvent,
  isReady,
  parseLogLine,
  serverInstance,
  waitUntilReady,
} from '../pod/contract.js'
import {installedRuntimeSupport} from '../onnx/runtime-support.js'
import {type LocalDeployment, readState, statePath, updateState} from '../state/project-state.js'
import type {ModelStore} from '../store/model-store.js'
import type {ModelManifest} from '../store/manifest.js'
import {releaseDeployLock, whileDeploying, withDeployLock} from './deploy-guard.js'
import {resolveDeployModel} from './deploy-model.js'
import {type Target, type TargetContext, liveness} from './target.js'
import {processExists} from '../util/fs-atomic.js'
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
interface LocalDeployOptions {
  timeoutMs: number
  port: number
  /** The version has a reference set: pulled beside the model, and serve checks its answers against it. */
  reference?: boolean
  onProgress?: (text: string) => void
  json?: boolean
}

export async function deployLocal(
  projectDir: string,
  store: ModelStore,
  manifest: ModelManifest,
  options: LocalDeployOptions,
): Promise<LocalDeployment & {unchanged: boolean}> {
  return withDeployLock(join(projectDir, '.mlops', 'local'), 'local', () => deployUnderLock(projectDir, store, manifest, options))
}

async function deployUnderLock(
  projectDir: string,
  store: ModelStore,
  manifest: ModelManifest,
  options: LocalDeployOptions,
): Promise<LocalDeployment & {unchanged: boolean}> {
  const previous = await recordedLocal(projectDir)
  const previousServes = previous !== undefined && (await isOurServer(previous))
  if (previous && previousServes && previous.sha256 === manifest.sha256 && (await isReady(previous.url)))
    return {...previous, unchanged: true}
  // A fixed port the current server holds cannot be bound twice: then, and only then, it stops first.
  if (previous && previousServes && options.port !== 0 && new URL(previous.url).port === String(options.port)) await stopServer(previous)

  const root = join(projectDir, '.mlops', 'local')
  const workdir = join(root, `workdir-${Date.now().toString(36)}-${process.pid}`)
  const log = `${workdir}.log`
  options.onProgress?.(`Pulling ${manifest.name}@${manifest.version}`)
  let child: ChildProcess | undefined
  let recorded: LocalDeployment | undefined
  const instance = randomBytes(16).toString('hex')
  // Ctrl-C or a SIGTERM before the new server is recorded: it and its folder go, the previous one
  // serves on, recorded as it was. After: the new one serves, and the previous one is stopped.
  const stop = async () => {
    if (recorded) {
      if (previous) await retire(previous)
      return `${recorded.model} serves at ${recorded.url}, recorded${previous ? `; ${previous.model} was stopped` : ''}`
    }

    if (child && !hasExited(child)) child.kill('SIGKILL')
    rmSync(workdir, {recursive: true, force: true})
    rmSync(`${workdir}.log`, {force: true})
    releaseDeployLock(root)
    return `nothing new was started${previous ? `; ${previous.model} still serves` : ''}`
  }

  return whileDeploying(
    stop,
    async () => {
      try {
        // The folder is made once Ctrl-C is handled: a signal as soon as it exists finds the handler.
        await mkdir(workdir, {recursive: true})
        // The pod's layout, under this deploy's own folder.
        const model = join(workdir, basename(MODEL_PATH))
        const labels = manifest.labels ? join(workdir, basename(LABELS_PATH)) : undefined
        const reference = options.reference ? join(workdir, basename(REFERENCE_PATH)) : undefined
        await store.pull({manifest, destination: model, labelsDestination: labels, referenceDestination: reference})
        const out = openSync(log, 'w')
        child = spawn(
          process.execPath,
          [
            BIN,
            'serve',
            '--model',
            model,
            ...(labels ? ['--labels', labels] : []),
            ...(reference ? ['--reference', reference] : []),
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
          {detached: true, stdio: ['ignore', out, out], env: {...process.env, [API_ENV.instance]: instance}},
        )
        closeSync(out)
        child.unref()
        const pid = child.pid!
        options.onProgress?.(`Starting mlops serve (pid ${pid})`)
        const url = await untilReady(child, log, options.timeoutMs)
        const deployment: LocalDeployment = {
          pid,
          instance,
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
        recorded = deployment
        if (previous) await retire(previous)
        await removeAbandoned(root, deployment)
        return {...deployment, unchanged: false}
      } catch (error) {
        // Our own child: its handle knows whether it has exited, so no pid of a stranger is signalled.
        if (child && !recorded) await stopChild(child)
        if (!recorded) await rm(workdir, {recursive: true, force: true})
        throw error
      }
    },
    {json: options.json},
  )
}

async function untilReady(child: ChildProcess, log: string, timeoutMs: number): Promise<string> {
  let url: string | undefined
  const outcome = await waitUntilReady({
    url: () => (url ??= listeningUrl(log)),
    failure: async () => (hasExited(child) ? 'exited' : undefined),
    timeoutMs,
  })
  if ('url' in outcome) return outcome.url
  const refused = 'failure' in outcome ? serveRefusal(await readFile(log, 'utf8').catch(() => '')) : undefined
  if (refused) {
    refused.message = `${refused.message}; the server that was serving still is`
    throw refused
  }
  const why = 'failure' in outcome ? 'exited before it was ready' : `was not ready within ${Math.round(timeoutMs / 1000)}s`
  throw new RolloutError(`mlops serve ${why}: ${lastLines(log)}; the server that was serving still is`, {
    suggestion: `the whole log is in ${log}`,
  })
}

/** Stops a replaced server and removes its files (a work folder from before per-deploy folders is removed too). */
async function retire(deployment: LocalDeployment): Promise<boolean> {
  const stopped = await stopServer(deployment)
  await rm(deployment.workdir, {recursive: true, force: true})
  return stopped
}

/** Work folders and logs of deploys killed before they could clean up: not the live one. */
async function removeAbandoned(root: string, live: LocalDeployment): Promise<void> {
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const path = join(root, name)
    const pid = Number(/^workdir-[0-9a-z]+-(\d+)(\.log)?$/.exec(name)?.[1])
    // A deploy still running in another process keeps its folder.
    if (!pid || path === live.workdir || path === live.log || (pid !== process.pid && processExists(pid))) continue
    await rm(path, {recursive: true, force: true})
  }
}

/**
 * The recorded local deployment, read back as strictly as a flag: its work
 * folder and log are removed and its pid signalled later, so a state.json that
 * points them anywhere else (another folder, a pid that is not a number) is
 * refused, never acted on.
 */
async function recordedLocal(projectDir: string): Promise<LocalDeployment | undefined> {
  const local = (await readState(projectDir)).local as Partial<LocalDeployment> | undefined
  if (local === undefined) return undefined
  const root = join(projectDir, '.mlops', 'local')
  const inRoot = (path: unknown, pattern: RegExp) => typeof path === 'string' && dirname(path) === root && pattern.test(basename(path))
  const url = typeof local.url === 'string' && URL.canParse(local.url) ? new URL(local.url) : undefined
  const valid =
    typeof local === 'object' &&
    local !== null &&
    Number.isSafeInteger(local.pid) &&
    (local.pid as number) > 1 &&
    (local.instance === undefined || (typeof local.instance === 'string' && /^[0-9a-f]{32}$/.test(local.instance))) &&
    url?.protocol === 'http:' &&
    url.hostname === '127.0.0.1' &&
    url.pathname === '/' &&
    inRoot(local.workdir, /^workdir-[0-9a-z]+-\d+$/) &&
    local.log === `${local.workdir}.log` &&
    typeof local.model === 'string' &&
    typeof local.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(local.sha256)
  if (!valid)
    throw new IntegrityError(
      `${statePath(projectDir)} records a local deployment that is not one mlops made; nothing was stopped or removed`,
      {
        suggestion: `stop the server yourself if one runs, then remove the "local" entry of ${statePath(projectDir)}`,
      },
    )
  return {...(local as LocalDeployment), url: url.origin}
}

export async function localStatus(projectDir: string): Promise<LocalDeployment & {running: boolean; ready: boolean}> {
  const deployment = await recordedLocal(projectDir)
  if (!deployment) throw new NotFoundError('nothing is deployed on the local target', {suggestion: 'mlops deploy --target local'})
  const running = await isOurServer(deployment)
  return {...deployment, running, ready: running && (await isReady(deployment.url))}
}

/** Stops the recorded server (only if it is provably ours: else it no longer runs) and removes its files and record. */
export async function deleteLocal(projectDir: string): Promise<LocalDeployment & {stopped: boolean}> {
  const deployment = await recordedLocal(projectDir)
  if (!deployment) throw new NotFoundError('nothing is deployed on the local target')
  const stopped = await retire(deployment)
  await rm(deployment.log, {force: true})
  await updateState(projectDir, state => {
    delete state.local
  })
  return {...deployment, stopped}
}

/**
 * Ends the recorded server: SIGTERM (it finishes in-flight requests), SIGKILL
 * after 10 s. Only when the server at the recorded URL says it is that pid,
 * started with the recorded token: a pid read back from state.json may be any
 * process's by now, and is never signalled on its word alone.
 */
async function stopServer(deployment: LocalDeployment): Promise<boolean> {
  if (!(await isOurServer(deployment))) return false
  process.kill(deployment.pid, 'SIGTERM')
  await untilGone(deployment.pid)
  return true
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (hasExited(child)) return
  child.kill('SIGTERM')
  await untilGone(child.pid!, () => hasExited(child))
}

async function untilGone(pid: number, exited = () => !processRuns(pid)): Promise<void> {
  for (let waited = 0; waited < 10_000 && !exited(); waited += 50) await sleep(50)
  if (!exited()) process.kill(pid, 'SIGKILL')
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

/** The recorded server answers at its URL with the recorded pid and token (a deploy of an older mlops recorded no token). */
async function isOurServer(deployment: LocalDeployment): Promise<boolean> {
  const answer = await serverInstance(deployment.url)
  return (
    answer !== undefined && answer.pid === deployment.pid && (deployment.instance === undefined || answer.instance === deployment.instance)
  )
}

/**
 * Exists and is not a zombie: a server whose parent (a CLI long gone) was
 * reparented to a PID 1 that does not reap stays a zombie after it exits. ps
 * (Linux and macOS alike) tells; without ps, existing is running.
 */
function processRuns(pid: number): boolean {
  if (!processExists(pid)) return false
  try {
    return !execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']}).startsWith('Z')
  } catch (error) {
    // ps exits 1 when the pid is gone; a missing ps says nothing.
    return (error as {status?: number}).status === undefined
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

/** deploy --target local: the mlops serve process that serves the model. */
export interface LocalDeployResult {
  target: 'local'
  model: string
  sha256: string
  url: string
  pid: number
  /** The same model was already served by a live server: nothing was started. */
  unchanged: boolean
  seconds: number
}

export type LocalStatusResult = {target: 'local'} & LocalDeployment & {running: boolean; ready: boolean}

export interface LocalDeleteResult {
  target: 'local'
  model: string
  pid: number
  /** Whether the server was still running (else only its record and work folder were removed). */
  stopped: boolean
}

export interface LocalResults {
  deploy: LocalDeployResult
  status: LocalStatusResult
  delete: LocalDeleteResult
}

/** The same pattern on this machine: the loader step, then mlops serve in the background. */
export function localTarget({project, io}: TargetContext): Target<LocalResults> {
  return {
    async deploy(request) {
      const started = Date.now()
      const {store, manifest, reference} = await resolveDeployModel(project, request, {cluster: false})
      const support = await installedRuntimeSupport()
      requireCompatible(manifest, support, `onnxruntime ${support.runtime}`, 'nothing was started')
      const progress = await io.progress()
      progress.start(`Deploying ${manifest.name}@${manifest.version} locally`)
      try {
        const deployed = await deployLocal(project.dir, store, manifest, {
          port: request.port,
          reference: reference !== undefined,
          timeoutMs: request.timeoutMs ?? 120_000,
          onProgress: text => progress.text(text),
          json: io.json,
        })
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
      io.log(
        stopped.stopped
          ? `stopped mlops serve (pid ${stopped.pid}, ${stopped.model}) and removed ${stopped.workdir}`
          : `mlops serve of ${stopped.model} (pid ${stopped.pid}) no longer ran; removed its record and ${stopped.workdir}`,
      )
      return {target: 'local', model: stopped.model, pid: stopped.pid, stopped: stopped.stopped}
    },

    async endpoint() {
      const deployment = await recordedLocal(project.dir)
      if (!deployment)
        throw new NotFoundError('nothing is running on the local target', {
          suggestion: 'deploy first: mlops deploy --target local, or pass --url',
        })
      if (!(await isOurServer(deployment)))
        throw new NotFoundError('the local server is no longer running', {suggestion: 'mlops deploy --target local'})
      return {url: deployment.url, close: async () => {}}
    },
  }
}
