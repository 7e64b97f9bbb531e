import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {readFileSync, readdirSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {codeCacheDir} from '../../src/util/code-cache.js'
import {tempDir} from '../helpers/stores.js'

const CODE_CACHE = join(import.meta.dirname, '..', '..', 'src', 'util', 'code-cache.ts')

/** A fresh process (the cache is written when it exits) that loads `file` with the cache in `dir` and prints what it exports. */
function load(file: string, dir: string) {
  const script = `import {requireCompiled} from ${JSON.stringify(CODE_CACHE)}; console.log(JSON.stringify(requireCompiled(${JSON.stringify(file)}, ${JSON.stringify(dir)})))`
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {encoding: 'utf8'})
  expect(run.status, run.stderr).to.equal(0)
  return JSON.parse(run.stdout) as unknown
}

function module(
  source = `const os = require('node:os'); module.exports = {answer: [1, 2, 3].map(n => n * 14)[2], eol: os.EOL, file: __filename}`,
) {
  const file = join(tempDir(), 'lib.cjs')
  writeFileSync(file, source)
  return {file, exports: {answer: 42, eol: '\n', file}}
}

/** The cache files in `dir` (each: the SHA-256 of the payload, then V8's payload). */
const cacheFiles = (dir: string) => readdirSync(dir).map(name => join(dir, name))
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest()

describe("code cache for the build's CommonJS files (util/code-cache.ts)", () => {
  it('loads the file as require() would, writes one checksummed cache file when the process ends, and uses it unchanged next time', () => {
    const {file, exports} = module()
    const dir = join(tempDir(), 'cache')
    expect(load(file, dir)).to.deep.equal(exports)
    const [cache] = cacheFiles(dir)
    expect(cacheFiles(dir)).to.have.length(1)
    const data = readFileSync(cache)
    expect(sha256(data.subarray(32))).to.deep.equal(data.subarray(0, 32))
    const written = statSync(cache).mtimeMs
    expect(load(file, dir)).to.deep.equal(exports)
    expect(statSync(cache).mtimeMs).to.equal(written)
    expect(cacheFiles(dir)).to.have.length(1)
  })

  it('a cache file changed, cut short or empty is never given to V8: the file still loads and the cache is written again', () => {
    const {file, exports} = module()
    const dir = join(tempDir(), 'cache')
    load(file, dir)
    const [cache] = cacheFiles(dir)
    const good = readFileSync(cache)
    const flipped = Buffer.from(good)
    flipped[flipped.length - 10] ^= 0xff
    for (const bad of [flipped, good.subarray(0, good.length / 2), Buffer.alloc(0), Buffer.from('not a cache')]) {
      writeFileSync(cache, bad)
      expect(load(file, dir)).to.deep.equal(exports)
      const rewritten = readFileSync(cache)
      expect(sha256(rewritten.subarray(32))).to.deep.equal(rewritten.subarray(0, 32))
    }
  })

  it("another source's cache under this name (intact, so V8 itself refuses it) is replaced", () => {
    const first = module()
    const other = module(`module.exports = {other: true}`)
    const dir = join(tempDir(), 'cache')
    load(first.file, dir)
    const [cache] = cacheFiles(dir)
    const foreign = join(tempDir(), 'cache')
    load(other.file, foreign)
    const [foreignCache] = cacheFiles(foreign)
    writeFileSync(cache, readFileSync(foreignCache))
    expect(load(first.file, dir)).to.deep.equal(first.exports)
    expect(readFileSync(cache)).to.not.deep.equal(readFileSync(foreignCache))
  })

  it('a cache folder that cannot be made (a file in its place) costs nothing but the cache', () => {
    const {file, exports} = module()
    const blocked = join(tempDir(), 'cache')
    writeFileSync(blocked, 'a file')
    expect(load(file, blocked)).to.deep.equal(exports)
    expect(readFileSync(blocked, 'utf8')).to.equal('a file')
  })

  it("lives in the user's cache folder for the platform, MLOPS_CODE_CACHE names another or turns it off", () => {
    expect(codeCacheDir({MLOPS_CODE_CACHE: 'off', XDG_CACHE_HOME: '/x'}, 'linux')).to.equal(undefined)
    expect(codeCacheDir({MLOPS_CODE_CACHE: '/somewhere'}, 'linux')).to.equal('/somewhere')
    expect(codeCacheDir({XDG_CACHE_HOME: '/x'}, 'linux')).to.equal(join('/x', 'mlops', 'code-cache'))
    expect(codeCacheDir({}, 'darwin')).to.match(/Library[\\/]Caches[\\/]mlops[\\/]code-cache$/)
    expect(codeCacheDir({LOCALAPPDATA: 'C:\\Users\\a\\AppData\\Local'}, 'win32')).to.equal(
      join('C:\\Users\\a\\AppData\\Local', 'mlops', 'code-cache'),
    )
    expect(codeCacheDir({}, 'win32')).to.equal(undefined)
  })
})
