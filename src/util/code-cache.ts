import {createHash} from 'node:crypto'
import {mkdirSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import {homedir} from 'node:os'
import {basename, dirname, join} from 'node:path'
import {Script} from 'node:vm'

import {tempPathFor} from './fs-atomic.js'

/**
 * Where compiled code is kept between runs: MLOPS_CODE_CACHE (a folder, or
 * `off`), else the user's cache folder (XDG_CACHE_HOME or ~/.cache on Linux,
 * ~/Library/Caches on macOS, LOCALAPPDATA on Windows), never the install folder.
 */
export function codeCacheDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string | undefined {
  const setting = env.MLOPS_CODE_CACHE
  if (setting === 'off') return undefined
  if (setting) return setting
  if (platform === 'win32') return env.LOCALAPPDATA ? join(env.LOCALAPPDATA, 'mlops', 'code-cache') : undefined
  const home = homedir()
  if (platform === 'darwin') return join(home, 'Library', 'Caches', 'mlops', 'code-cache')
  return join(env.XDG_CACHE_HOME || join(home, '.cache'), 'mlops', 'code-cache')
}

const DIGEST = 32
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest()

/**
 * Loads a CommonJS file of the build as require() would, compiled with V8's
 * code cache: Node 20 has no compile cache for ES modules (module.enableCompileCache
 * is Node 22), and compiling the Kubernetes client (1.4 MB) was the largest part of a
 * cluster command's start.
 *
 * The cache file is named by the source's SHA-256, Node's V8 version and the CPU
 * architecture, and holds the SHA-256 of its payload before it: a file cut short, changed
 * or written for another source is never given to V8, which checks the version and flags
 * but not the bytes. One missing or refused is written once this process has run
 * (so it also holds the functions compiled on the way), to a temp file then renamed;
 * a folder that cannot be written costs nothing but the cache.
 */
export function requireCompiled(file: string, dir = codeCacheDir()): unknown {
  const source = readFileSync(file, 'utf8')
  const cacheFile =
    dir && join(dir, `${basename(file)}-${sha256(source).toString('hex').slice(0, 32)}-${process.versions.v8}-${process.arch}.bin`)
  const cachedData = cacheFile ? readVerified(cacheFile) : undefined
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {filename: file, cachedData})
  const module = {exports: {}}
  ;(script.runInThisContext() as (...args: unknown[]) => void)(module.exports, createRequire(file), module, file, dirname(file))
  if (cacheFile && (!cachedData || script.cachedDataRejected))
    process.once('exit', () => writeVerified(cacheFile, script.createCachedData()))
  return module.exports
}

function readVerified(file: string): Buffer | undefined {
  try {
    const data = readFileSync(file)
    const payload = data.subarray(DIGEST)
    return data.length > DIGEST && sha256(payload).equals(data.subarray(0, DIGEST)) ? payload : undefined
  } catch {
    return undefined
  }
}

function writeVerified(file: string, payload: Buffer): void {
  const temp = tempPathFor(file)
  try {
    mkdirSync(dirname(file), {recursive: true})
    writeFileSync(temp, Buffer.concat([sha256(payload), payload]))
    renameSync(temp, file)
  } catch {
    try {
      rmSync(temp, {force: true})
    } catch {
      // No folder, so no temp file.
    }
  }
}
