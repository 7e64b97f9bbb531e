#!/usr/bin/env node
// The built CLI (npm run build: scripts/bundle.js). bin/dev.js runs the sources.
import module from 'node:module'

// Node 22.1 and later keep the chunks' compiled code between runs (Node 20 has no such cache for ES
// modules; the Kubernetes client has its own, src/util/code-cache.ts). MLOPS_CODE_CACHE=off turns both off.
if (process.env.MLOPS_CODE_CACHE !== 'off') module.enableCompileCache?.()
const {execute} = await import('../dist/cli.js')

await execute({dir: import.meta.url})
