#!/usr/bin/env node
// Replaces dist/vendor/*.js (re-exports of large packages, compiled by tsc)
// with one minified ESM bundle each, so that loading them reads one file
// instead of hundreds. See src/vendor/. Runs after tsc, in `npm run build`.
import {build} from 'esbuild'
import {readdirSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const vendor = join(root, 'dist', 'vendor')
const entryPoints = readdirSync(vendor)
  .filter(name => name.endsWith('.js'))
  .map(name => join(vendor, name))
await build({
  entryPoints,
  outdir: vendor,
  allowOverwrite: true,
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  legalComments: 'none',
  logLevel: 'warning',
  // CommonJS code inside the bundle still calls require() for Node's built-ins.
  banner: {js: "import {createRequire as __mlopsCreateRequire} from 'node:module'; const require = __mlopsCreateRequire(import.meta.url);"},
})
