import {rmSync} from 'node:fs'
import {mkdir, readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {reportFailure} from '../cli/failure.js'
import {ConflictError, ExitCode, errorMessage} from '../errors.js'
import {processExists} from '../util/fs-atomic.js'

/**
 * What every target's deploy shares: one deploy at a time per project and target, and a
 * Ctrl-C or SIGTERM that undoes what this run started, says what state it left, and exits 130.
 */
export const INTERRUPTS = ['SIGINT', 'SIGTERM'] as const
const DEPLOY_LOCK = 'deploy.lock'

/**
 * One deploy at a time per project on a target: the lock file (in `root`, the target's folder
 * under .mlops/) holds the deploying CLI's pid; a second deploy exits 4 naming it (two would
 * each think theirs is the one recorded). A lock whose pid no longer exists was left by a
 * deploy killed with -9, and is taken over.
 */
export async function withDeployLock<T>(root: string, target: string, deploy: () => Promise<T>): Promise<T> {
  const lock = join(root, DEPLOY_LOCK)
  await mkdir(root, {recursive: true})
  for (;;) {
    try {
      await writeFile(lock, `${process.pid}\n`, {flag: 'wx'})
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const holder = Number((await readFile(lock, 'utf8').catch(() => '')).trim())
      if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && processExists(holder))
        throw new ConflictError(`another mlops deploy (pid ${holder}) is deploying this project to the ${target} target`, {
          suggestion: 'wait for it to finish, then run mlops status',
        })
      await rm(lock, {force: true})
    }
  }

  try {
    return await deploy()
  } finally {
    await rm(lock, {force: true})
  }
}

/** The lock of `root`, removed at once: for a deploy that exits from a signal handler, where no finally runs. */
export function releaseDeployLock(root: string): void {
  rmSync(join(root, DEPLOY_LOCK), {force: true})
}

const exitHooks = new Set<() => Promise<void>>()

/**
 * `hook` runs (bounded) after an interrupt's report and before its exit: what a run holds beyond
 * this process, such as a cluster lease, is given back rather than left to lapse. Answers the
 * function that unregisters it.
 */
export function onInterruptExit(hook: () => Promise<void>): () => void {
  exitHooks.add(hook)
  return () => exitHooks.delete(hook)
}

async function releaseOnExit(): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    Promise.allSettled([...exitHooks].map(async hook => hook())),
    new Promise(resolve => {
      timer = setTimeout(resolve, 5000)
    }),
  ])
  clearTimeout(timer)
}

/**
 * Runs `work`; a Ctrl-C or SIGTERM meanwhile runs `stop` (which undoes what this run started and
 * answers the state it left, in words), reports `COMMAND interrupted (SIGNAL): STATE` (`mlops deploy` unless `command` says) as
 * every failure is reported (under --json also as the error object on stdout) and exits 130. A second signal while stopping exits 130 at once. `stop` is bounded: a clean-up
 * that hangs (an engine or a cluster gone) is reported as not finished after `stopMs`.
 */
export async function whileDeploying<T>(
  stop: (signal: NodeJS.Signals) => Promise<string> | string,
  work: () => Promise<T>,
  options: {json?: boolean; stopMs?: number; command?: string} = {},
): Promise<T> {
  const stopMs = options.stopMs ?? 30_000
  let stopping = false
  const interrupted = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(ExitCode.INTERRUPTED)
    stopping = true
    let timer: NodeJS.Timeout | undefined
    const bounded = new Promise<string>(resolve => {
      timer = setTimeout(() => resolve(`the clean-up did not finish within ${stopMs / 1000}s`), stopMs)
    })
    void Promise.race([Promise.resolve().then(() => stop(signal)), bounded])
      .catch((error: unknown) => `the clean-up failed: ${errorMessage(error)}`)
      .then(state => {
        clearTimeout(timer)
        // As every failure is reported: the Error: line, and under --json the error object on stdout.
        reportFailure(
          {
            code: 'INTERRUPTED',
            exitCode: ExitCode.INTERRUPTED,
            message: `${options.command ?? 'mlops deploy'} interrupted (${signal}): ${state}`,
          },
          {json: options.json ?? false},
        )
        return releaseOnExit()
      })
      .then(() => process.exit(ExitCode.INTERRUPTED))
  }

  // Once stopping, only the signal's path ends the process: the work, failing because its
  // container or child was just removed, must not report that failure with another code first.
  const never = new Promise<never>(() => {})
  for (const signal of INTERRUPTS) process.on(signal, interrupted)
  try {
    const value = await work()
    return stopping ? await never : value
  } catch (error) {
    if (stopping) return await never
    throw error
  } finally {
    if (!stopping) for (const signal of INTERRUPTS) process.off(signal, interrupted)
  }
}
