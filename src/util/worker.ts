import {readFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {Worker, type WorkerOptions} from 'node:worker_threads'

import {FROM_SOURCES, entryPoint} from './package-root.js'

/**
 * The one way mlops starts a worker thread (the onnxruntime engine, the file hasher): the build's
 * entry point dist/PATH.js, or, from the TypeScript sources (tests, bin/dev.js), src/PATH.ts behind
 * a bootstrap that registers tsx in the thread first: Node 20 does not apply --import to a
 * worker's own entry script.
 */
export function startWorker(path: string, options: Omit<WorkerOptions, 'eval'> = {}): Worker {
  if (!FROM_SOURCES) return new Worker(entryPoint(path), options)
  const script = pathToFileURL(entryPoint(path)).href
  const bootstrap = `import(${JSON.stringify(tsxRegisterUrl())}).then(({register}) => { register(); return import(${JSON.stringify(script)}) })`
  return new Worker(bootstrap, {...options, eval: true})
}

/** tsx's ESM register API (its CommonJS one cannot register from a worker), as its package exports it. */
function tsxRegisterUrl(): string {
  const manifest = createRequire(import.meta.url).resolve('tsx/package.json')
  const exported = (JSON.parse(readFileSync(manifest, 'utf8')) as {exports: Record<string, {import: {default: string}}>}).exports
  return pathToFileURL(join(dirname(manifest), exported['./esm/api'].import.default)).href
}
