#!/usr/bin/env node
// Replaces dist/config/schema-validator.js (which compiles the mlops.yaml
// schema with ajv at run time) with ajv's standalone code for the same schema
// and options: no ajv, no compile step when a command starts. Runs after tsc.
import {Ajv} from 'ajv'
import standalone from 'ajv/dist/standalone/index.js'
import {readFileSync, renameSync, writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const {AJV_OPTIONS} = await import(join(root, 'dist', 'config', 'schema-validator.js'))
const ajv = new Ajv({...AJV_OPTIONS, code: {source: true, esm: true}})
const validate = ajv.compile(JSON.parse(readFileSync(join(root, 'schemas', 'mlops.schema.json'), 'utf8')))
const code = (standalone.default ?? standalone)(ajv, validate)
// The generated code still require()s ajv's small runtime helpers (ucs2length).
const out = join(root, 'dist', 'config', 'schema-validator.js')
writeFileSync(
  `${out}.tmp`,
  `import {createRequire} from 'node:module';const require = createRequire(import.meta.url);\nexport const AJV_OPTIONS = ${JSON.stringify(AJV_OPTIONS)};\n${code.replace(/^"use strict";/, '')}\n`,
)
renameSync(`${out}.tmp`, out)
