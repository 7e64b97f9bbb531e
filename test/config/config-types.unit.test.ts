import {expect} from 'chai'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

// scripts/config-types.js is plain JavaScript run by node; its generate() is what --check compares.
const root = join(import.meta.dirname, '..', '..')

describe('mlops.yaml type generated from the schema', () => {
  it('src/config/mlops-yaml.ts is what scripts/config-types.js makes of schemas/mlops.schema.json (a schema change without the type fails)', async () => {
    const {generate} = (await import(join(root, 'scripts', 'config-types.js'))) as {generate: () => Promise<string>}
    expect(readFileSync(join(root, 'src', 'config', 'mlops-yaml.ts'), 'utf8')).to.equal(await generate())
  })
})
