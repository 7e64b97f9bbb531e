#!/usr/bin/env node
// Probes the installed onnxruntime-node once, at build time, and saves the
// answer with the package's version in dist/onnx/support.json: the
// compatibility guard (deploy, image check) then reads it instead of loading
// the runtime, as long as the same version is installed. Runs after tsc.
import {renameSync, writeFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'
import {dirname, join} from 'node:path'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const {SAVED_SUPPORT, installedRuntimePackage, probeRuntimeSupport} = await import(join(root, 'dist', 'onnx', 'runtime-support.js'))
try {
  const support = await probeRuntimeSupport()
  const out = SAVED_SUPPORT
  writeFileSync(`${out}.tmp`, `${JSON.stringify({package: installedRuntimePackage(), support})}\n`)
  renameSync(`${out}.tmp`, out)
} catch (error) {
  // No usable runtime on the build machine: commands probe when they need to.
  console.error(`runtime-support: not saved (${error.message.split('\n')[0]}); commands will probe the runtime themselves`)
}
