import {randomBytes} from 'node:crypto'
import {rmSync} from 'node:fs'
import {type FileHandle, link, mkdtemp, open, readdir, rename, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {basename, dirname, join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

/** A temporary path beside `path` (same folder, so the final rename is atomic), hidden and unique. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
}

const escape = (text: string) => text.replaceAll(/[.*+?^${}()|[\]\\]/g, '\\$&')

/**
 * Removes the temp files of `path` that earlier runs left (killed before they
 * could clean up): those whose process is gone, or whose process id is ours,
 * which in a restarted container (PID 1 again) means an earlier life of this
 * container. A temp file of another live process (a concurrent pull) stays.
 */
export async function removeStaleTemps(path: string): Promise<string[]> {
  const pattern = new RegExp(`^\\.${escape(basename(path))}\\.(\\d+)\\.[0-9a-f]{8}\\.tmp$`)
  const removed: string[] = []
  for (const name of await readdir(dirname(path)).catch(() => [] as string[])) {
    const pid = Number(pattern.exec(name)?.[1])
    if (!pid || (pid !== process.pid && processExists(pid)) || live.has(join(dirname(path), name))) continue
    await rm(join(dirname(path), name), {force: true})
    removed.push(name)
  }

  return removed
}

/** Whether a process with this pid exists (another user's counts). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * A private temporary folder `<tmpdir>/<prefix><pid>-XXXXXX` for this process, after removing the
 * ones of the same prefix whose process is gone (killed before it could clean up).
 */
export async function ownTempDir(prefix: string): Promise<string> {
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1])
    if (!pid || pid === process.pid || processExists(pid)) continue
    await rm(join(tmpdir(), name), {recursive: true, force: true})
  }

  return mkdtemp(join(tmpdir(), `${prefix}${process.pid}-`))
}

const live = new Set<string>()

/**
 * Removes `temp` if the process is stopped by SIGINT or SIGTERM (Ctrl-C, a
 * pod's shutdown) before the write finishes, then lets the signal end the
 * process as it would have (or the handler that owns it, when there is one). Call the returned function once the temp file is
 * gone or renamed.
 */
export function trackTemp(temp: string): () => void {
  if (live.size === 0) for (const signal of SIGNALS) process.on(signal, removeLiveTemps)
  live.add(temp)
  return () => {
    live.delete(temp)
    if (live.size === 0) for (const signal of SIGNALS) process.off(signal, removeLiveTemps)
  }
}

const SIGNALS = ['SIGINT', 'SIGTERM'] as const

function removeLiveTemps(signal: NodeJS.Signals): void {
  for (const temp of live) rmSync(temp, {force: true})
  live.clear()
  for (const other of SIGNALS) process.off(other, removeLiveTemps)
  // The signal ends the process as it would have, unless another handler owns it (an interrupted
  // deploy undoing what it started): raised again then, it would cut that clean-up short.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
}

export function isTempPath(name: string): boolean {
  return /^\..*\.\d+\.[0-9a-f]{8}\.tmp$/.test(name) || name.endsWith('.lock')
}

/**
 * Writes a file through a temporary file, fsync and rename (or link, for
 * create-only), so that readers see the old content or the new, never part.
 * `fill` writes the content into the open temporary file.
 */
export async function writeFileAtomic(
  path: string,
  fill: (file: FileHandle) => Promise<void>,
  options: {exclusive?: boolean} = {},
): Promise<void> {
  // What a writer killed before it could clean up left for this path goes first.
  await removeStaleTemps(path)
  const temp = tempPathFor(path)
  const untrack = trackTemp(temp)
  const file = await open(temp, 'wx', 0o644)
  try {
    await fill(file)
    await file.sync()
    await file.close()
    // link() fails with EEXIST when the target exists: an exclusive create that is also atomic.
    await (options.exclusive ? link(temp, path) : rename(temp, path))
  } finally {
    await file.close().catch(() => {})
    await rm(temp, {force: true})
    untrack()
  }
}

const STALE_LOCK_MS = 30_000

/** Runs `fn` while holding `${path}.lock` (create-exclusive), for compare-and-swap on local files. */
export async function withFileLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${path}.lock`
  for (let waited = 0; ; waited += 10) {
    try {
      const handle = await open(lock, 'wx')
      await handle.close()
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const info = await stat(lock).catch(() => undefined)
      if (info && Date.now() - info.mtimeMs > STALE_LOCK_MS) await rm(lock, {force: true})
      if (waited > STALE_LOCK_MS) throw new Error(`timed out waiting for lock ${lock}`)
      await sleep(10)
    }
  }

  try {
    return await fn()
  } finally {
    await rm(lock, {force: true})
  }
}
