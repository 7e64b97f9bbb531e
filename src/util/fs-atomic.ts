import {randomBytes} from 'node:crypto'
import {type FileHandle, link, open, rename, rm, stat} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

/** A temporary path beside `path` (same folder, so the final rename is atomic), hidden and unique. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
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
  const temp = tempPathFor(path)
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
