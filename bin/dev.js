#!/usr/bin/env node
// Runs the TypeScript sources directly (no build step), for development.
import {register} from 'tsx/esm/api'

register()
const {execute} = await import('@oclif/core')
await execute({development: true, dir: import.meta.url})
