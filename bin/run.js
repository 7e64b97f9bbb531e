#!/usr/bin/env node
// The built CLI (npm run build: scripts/bundle.js). bin/dev.js runs the sources.
import {execute} from '../dist/cli.js'

await execute({dir: import.meta.url})
