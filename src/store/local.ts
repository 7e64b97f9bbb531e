import {createReadStream} from 'node:fs'
import {type Stats} from 'node:fs'
import {mkdir, readFile, readdir, rmdir, stat, unlink} from 'node:fs/promises'
import {dirname, join, relative, sep} from 'node:path'
import {pathToFileURL} from 'node:url'

import {IntegrityError, NotFoundError, UsageError} from '../errors.js'
import {isTempPath, removeStaleTemps, withFileLock, writeFileAtomic} from '../util/fs-atomic.js'
import {
  type ListResult,
  type ObjectStat,
  PreconditionFailedError,
  type StorageBackend,
  type UploadOptions,
  type WriteOptions,
} from './backend.js'

/**
 * A store in a local folder: the zero-setup default. Create-only writes use
 * link(2) (atomic and exclusive), replacements use rename(2) under a lock
 * file so that generation preconditions hold between processes.
 */
export class LocalBackend implements StorageBackend {
  readonly uri: string

  constructor(readonly root: string) {
    this.uri = pathToFileURL(root).href
  }

  /** A store path that is a file is a mistake (exit 2); one that does not exist yet is an empty store unless `mustExist`. */
  async check(options: {mustExist?: boolean} = {}): Promise<void> {
    const info = await stat(this.root).catch(() => undefined)
    if (info && !info.isDirectory())
      throw new UsageError(`store ${this.root} is a file, not a folder`, {
        suggestion: 'point --store / MLOPS_STORE / store in mlops.yaml at a folder',
      })
    if (!info && options.mustExist)
      throw new NotFoundError(`store ${this.root} does not exist`, {
        suggestion: 'check the path (--store / MLOPS_STORE / store in mlops.yaml); the first mlops model push creates it',
      })
  }

  async removeLeftovers(prefix: string): Promise<string[]> {
    const removed: string[] = []
    const walk = async (dir: string): Promise<void> => {
      const entries = await readdir(dir, {withFileTypes: true}).catch(notFoundAsUndefined)
      for (const entry of entries ?? []) {
        if (entry.isDirectory()) {
          await walk(join(dir, entry.name))
        } else if (isTempPath(entry.name) && !entry.name.endsWith('.lock')) {
          const temp = /^\.(.+)\.\d+\.[0-9a-f]{8}\.tmp$/.exec(entry.name)
          if (temp)
            removed.push(
              ...(await removeStaleTemps(join(dir, temp[1]))).map(name => relative(this.root, join(dir, name)).split(sep).join('/')),
            )
        }
      }

      await this.removeEmptyFolders(dir)
    }

    await walk(this.path(prefix))
    return [...new Set(removed)].sort()
  }

  async stat(key: string): Promise<ObjectStat | undefined> {
    const info = await stat(this.path(key), {bigint: true}).catch(notFoundAsUndefined)
    return info && toStat(info)
  }

  async read(key: string): Promise<{data: Buffer; stat: ObjectStat} | undefined> {
    // Replacements are renames, so the file opened here is one whole generation.
    const info = await this.stat(key)
    if (!info) return undefined
    const data = await readFile(this.path(key)).catch((error: NodeJS.ErrnoException) => {
      // An object store has no folder where an object should be: someone made one by hand.
      if (error.code === 'EISDIR') throw new IntegrityError(`${key} in ${this.uri} is a folder, not a stored object`)
      return notFoundAsUndefined(error)
    })
    return data && {data, stat: info}
  }

  async write(key: string, data: Buffer, options: WriteOptions = {}): Promise<ObjectStat> {
    return this.put(key, options, async file => {
      await file.writeFile(data)
    })
  }

  async upload(key: string, source: string, options: UploadOptions = {}): Promise<ObjectStat> {
    const {size} = await stat(source)
    return this.put(key, options, async file => {
      let sent = 0
      for await (const chunk of createReadStream(source, {highWaterMark: 4 << 20, end: size - 1})) {
        await file.write(chunk as Buffer)
        sent += (chunk as Buffer).length
        options.onProgress?.(sent, size)
      }
    })
  }

  async readRange(
    key: string,
    generation: string,
    start: number,
    end: number,
    onData: (chunk: Buffer) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const current = await this.stat(key)
    if (!current || current.generation !== generation) throw new PreconditionFailedError(key)
    if (end <= start) return
    for await (const chunk of createReadStream(this.path(key), {start, end: end - 1, highWaterMark: 1 << 20, signal})) {
      onData(chunk as Buffer)
    }
  }

  async list(prefix: string, options: {delimiter?: boolean} = {}): Promise<ListResult> {
    const result: ListResult = {keys: [], prefixes: []}
    const base = this.path(prefix)
    const walk = async (dir: string): Promise<void> => {
      const entries = await readdir(dir, {withFileTypes: true}).catch(notFoundAsUndefined)
      for (const entry of entries ?? []) {
        if (isTempPath(entry.name)) continue
        const key = relative(this.root, join(dir, entry.name)).split(sep).join('/')
        if (entry.isDirectory()) {
          if (options.delimiter) result.prefixes.push(`${key}/`)
          else await walk(join(dir, entry.name))
        } else if (entry.isFile()) {
          result.keys.push(key)
        }
      }
    }

    await walk(base)
    result.keys.sort()
    result.prefixes.sort()
    return result
  }

  async delete(key: string, options: {ifGeneration?: string} = {}): Promise<void> {
    const path = this.path(key)
    const remove = async () => {
      if (options.ifGeneration !== undefined) {
        const current = await this.stat(key)
        if (current?.generation !== options.ifGeneration) throw new PreconditionFailedError(key)
      }

      await unlink(path).catch(notFoundAsUndefined)
    }

    await (options.ifGeneration === undefined ? remove() : withFileLock(path, remove))
    await this.removeEmptyFolders(dirname(path))
  }

  private path(key: string): string {
    return join(this.root, ...key.split('/'))
  }

  private async put(key: string, options: WriteOptions, fill: Parameters<typeof writeFileAtomic>[1]): Promise<ObjectStat> {
    const path = this.path(key)
    await mkdir(dirname(path), {recursive: true})
    const {ifGeneration} = options
    try {
      if (ifGeneration === '0') {
        await writeFileAtomic(path, fill, {exclusive: true})
      } else if (ifGeneration === undefined) {
        await writeFileAtomic(path, fill)
      } else {
        await withFileLock(path, async () => {
          const current = await this.stat(key)
          if (current?.generation !== ifGeneration) throw new PreconditionFailedError(key)
          await writeFileAtomic(path, fill)
        })
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new PreconditionFailedError(key)
      throw error
    }

    const written = await this.stat(key)
    if (!written) throw new Error(`${path} vanished right after it was written`)
    return written
  }

  private async removeEmptyFolders(dir: string): Promise<void> {
    for (let current = dir; current.startsWith(this.root) && current !== this.root; current = dirname(current)) {
      try {
        await rmdir(current)
      } catch {
        return
      }
    }
  }
}

function toStat(info: Stats | import('node:fs').BigIntStats): ObjectStat {
  const big = info as import('node:fs').BigIntStats
  // A rename gives a new inode, so inode + ctime changes with every write: a generation.
  return {size: Number(big.size), generation: `${big.ino}.${big.ctimeNs}`}
}

function notFoundAsUndefined(error: NodeJS.ErrnoException): undefined {
  if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined
  throw error
}
