import {existsSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

/**
 * Whether this process runs the TypeScript sources (tsx: tests, bin/dev.js)
 * rather than the build (bin/run.js, the images).
 */
export const FROM_SOURCES = import.meta.url.endsWith('.ts')

/**
 * The mlops package itself: package.json, templates/, schemas/, dist/. Found
 * by walking up from this module, because the build bundles it into a chunk
 * whose place under dist/ is the bundler's choice, while the sources run it
 * from src/util/.
 */
export const PACKAGE_ROOT = findPackageRoot(dirname(fileURLToPath(import.meta.url)))

/** A path inside the mlops package. */
export function packagePath(...parts: string[]): string {
  return join(PACKAGE_ROOT, ...parts)
}

/**
 * A module the build emits as an entry point of its own (a worker's script):
 * dist/PATH.js when built, src/PATH.ts from the sources.
 */
export function entryPoint(path: string): string {
  return FROM_SOURCES ? packagePath('src', `${path}.ts`) : packagePath('dist', `${path}.js`)
}

function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir
    if (dirname(dir) === dir) return join(start, '..', '..')
  }
}
