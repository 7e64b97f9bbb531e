import dockerignoreModule from '@balena/dockerignore'
import {createReadStream, readFileSync, statSync} from 'node:fs'
import {join, relative, sep} from 'node:path'
import type {Readable} from 'node:stream'
import {pack} from 'tar-fs'

// A CommonJS module whose default export is the factory.
const dockerignore = ((dockerignoreModule as unknown as {default?: typeof dockerignoreModule}).default ??
  dockerignoreModule) as unknown as (options?: {ignorecase?: boolean}) => {add(patterns: string[]): {ignores(path: string): boolean}}

/**
 * The build context as a tar stream, honouring the folder's .dockerignore the
 * way the Docker CLI does (same matcher); the Dockerfile always goes in, even
 * when ignored, as `docker build -f` sends it, replaced by `override` when given.
 */
export function buildContext(dir: string, dockerfile: string, override?: string): Readable {
  let patterns: string[] = []
  try {
    patterns = readFileSync(join(dir, '.dockerignore'), 'utf8')
      .split('\n')
      .map(line => line.trim())
      .filter(line => line && !line.startsWith('#'))
  } catch {
    // no .dockerignore: everything goes in
  }

  const matcher = dockerignore({ignorecase: false}).add(patterns)
  const exceptions = [dockerfile, ...patterns.filter(p => p.startsWith('!')).map(p => p.slice(1).replace(/^\/+/, ''))]
  const overrideSize = override ? statSync(override).size : 0
  return pack(dir, {
    // A project's own Dockerfile takes the place of the packaged one, same path in the context.
    map(header) {
      if (override && header.name === dockerfile) header.size = overrideSize
      return header
    },
    mapStream(stream, header) {
      return override && header.name === dockerfile ? createReadStream(override) : stream
    },
    ignore(name: string) {
      const path = relative(dir, name).split(sep).join('/')
      if (path === dockerfile || !matcher.ignores(path)) return false
      // An ignored folder is still walked when an exception (!dist/**) may re-include something below it.
      return !exceptions.some(exception => exception.startsWith(`${path}/`))
    },
  }) as unknown as Readable
}
