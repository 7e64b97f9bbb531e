#!/usr/bin/env node
// Writes src/config/mlops-yaml.ts, the TypeScript type of mlops.yaml, from
// schemas/mlops.schema.json: the schema is the one source, the type follows.
// `node scripts/config-types.js --check` exits 1 when the file is stale
// (test/config/config-types.unit.test.ts runs it, so a schema change without the
// type fails the tests).
import {compileFromFile} from 'json-schema-to-typescript'
import {readFileSync, renameSync, writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const out = join(root, 'src', 'config', 'mlops-yaml.ts')

export async function generate() {
  const body = await compileFromFile(join(root, 'schemas', 'mlops.schema.json'), {
    bannerComment: '',
    additionalProperties: false,
    cwd: join(root, 'schemas'),
    style: {singleQuote: true, semi: false, printWidth: 140, bracketSpacing: false},
  })
  return `// Generated from schemas/mlops.schema.json by scripts/config-types.js: edit the schema, then run it.\n\n${body.trim()}\n`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = await generate()
  if (process.argv.includes('--check')) {
    const current = readFileSync(out, 'utf8')
    if (current !== text) {
      console.error(`${out} does not match schemas/mlops.schema.json: run node scripts/config-types.js`)
      process.exit(1)
    }
  } else {
    writeFileSync(`${out}.tmp`, text)
    renameSync(`${out}.tmp`, out)
  }
}
