import {expect} from 'chai'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import semver from 'semver'

const root = join(import.meta.dirname, '..', '..')

/**
 * Packages allowed to ask for a newer Node 20 than package.json promises, and why: tools that run
 * only on a developer's or CI's machine, never in the bundle nor in a user's install.
 */
const DEV_TOOLS_ONLY: Record<string, string> = {
  // typescript-eslint's visitor keys: lint only (^20.19.0 || ^22.13.0 || >=24)
  'eslint-visitor-keys': 'lint',
}

describe('dependencies and the Node versions package.json promises (engines)', () => {
  const promised = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {engines: {node: string}}).engines.node
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, {version?: string; dev?: boolean; engines?: {node?: string} | string[]}>
  }
  const entries = Object.entries(lock.packages).filter(([path]) => path !== '')
  const nodeRange = (engines: unknown) =>
    engines && typeof engines === 'object' && !Array.isArray(engines) ? (engines as {node?: string}).node : undefined

  it(`every package in package-lock.json runs on the oldest Node that package.json promises (${promised}), dev tools named with their reason aside`, () => {
    const oldest = semver.minVersion(promised)!.version
    const refusing = entries.flatMap(([path, entry]) => {
      const range = nodeRange(entry.engines)
      const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)
      if (!range || semver.satisfies(oldest, range)) return []
      if (DEV_TOOLS_ONLY[name] && entry.dev) return []
      return [`${name}@${entry.version} wants node ${range}`]
    })
    expect(refusing, 'pin an older release with "overrides" in package.json (see test/README.md)').to.deep.equal([])
  })

  it('every package in package-lock.json, dev tools included, runs on some Node 20 that package.json promises (so npm ci on Node 20 warns of no EBADENGINE)', () => {
    const node20 = `${promised} <21.0.0`
    const refusing = entries.flatMap(([path, entry]) => {
      const range = nodeRange(entry.engines)
      return range && !semver.intersects(range, node20) ? [`${path}@${entry.version} wants node ${range}`] : []
    })
    expect(refusing).to.deep.equal([])
  })
})
