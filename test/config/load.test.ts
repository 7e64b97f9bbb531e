import {runCommand} from '@oclif/test'
import {expect} from 'chai'
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {loadConfig, parseConfig} from '../../src/config/load.js'
import {ConfigError, ExitCode} from '../../src/errors.js'
import {resolveStoreSettings} from '../../src/store/open.js'
import {fixture, tempDir} from '../helpers/stores.js'

const root = join(import.meta.dirname, '..', '..')

function configError(text: string): ConfigError {
  try {
    parseConfig(text, 'mlops.yaml')
  } catch (error) {
    return error as ConfigError
  }

  throw new Error('expected a ConfigError')
}

describe('mlops.yaml', () => {
  it('accepts a full valid file', () => {
    const values = parseConfig(
      'name: iris-svc\nmodel:\n  name: iris\nstore:\n  uri: gs://models/prod\n  endpoint: http://127.0.0.1:4443\n  anonymous: true\n  timeout: 10\n',
      'mlops.yaml',
    )
    expect(values.store).to.deep.equal({uri: 'gs://models/prod', endpoint: 'http://127.0.0.1:4443', anonymous: true, timeout: 10})
  })

  it('YAML syntax error: names file, line and column', () => {
    const error = configError('name: iris\nstore: [unclosed\n')
    expect(error.exitCode).to.equal(ExitCode.USAGE)
    expect(error.message).to.match(/^mlops\.yaml:\d+:\d+: invalid YAML: /)
  })

  it('unknown key: names the key, its line, and the closest allowed key', () => {
    const error = configError('name: iris\nstroe: gs://x\n')
    expect(error.message).to.equal('mlops.yaml:2:1: unknown key "stroe"')
    expect(error.suggestion).to.equal('did you mean "store"? Allowed keys: name, model, store, image, deploy')
  })

  it('unknown nested key: names the parent field', () => {
    const error = configError('store:\n  uri: gs://x\n  endpiont: http://127.0.0.1:1\n')
    expect(error.message).to.equal('mlops.yaml:3:3: unknown key "endpiont" in store')
    expect(error.suggestion).to.match(/did you mean "endpoint"/)
  })

  it('wrong type: names the field, what was expected and what was found', () => {
    expect(configError('store:\n  uri: gs://x\n  anonymous: "yes"\n').message).to.equal(
      'mlops.yaml:3:14: store.anonymous: expected boolean, got string "yes"',
    )
    expect(configError('store: 42\n').message).to.equal('mlops.yaml:1:8: store: expected string or object, got number 42')
    expect(configError('store:\n  timeout: -1\n').message).to.match(/^mlops\.yaml:2:12: store\.timeout: must be > 0/)
  })

  it('invalid model name pattern', () => {
    expect(configError('model:\n  name: ../x\n').message).to.match(
      /^mlops\.yaml:2:9: model\.name: string "\.\.\/x" is not a name of 1-64 characters/,
    )
  })

  it('is found in a parent folder; a relative local store resolves next to it', () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'mlops.yaml'), 'store: models\n')
    mkdirSync(join(dir, 'a', 'b'), {recursive: true})
    const config = loadConfig({cwd: join(dir, 'a', 'b')})
    expect(config.file).to.equal(join(dir, 'mlops.yaml'))
    expect(resolveStoreSettings(config, {}, join(dir, 'a', 'b'))).to.include({uri: 'models', baseDir: dir})
  })

  it('precedence: file, then MLOPS_* / flags (relative to the current folder)', () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'mlops.yaml'), 'store:\n  uri: gs://from-file\n  timeout: 9\n')
    const config = loadConfig({cwd: dir})
    expect(resolveStoreSettings(config, {}, '/elsewhere')).to.include({uri: 'gs://from-file', timeoutSeconds: 9})
    expect(resolveStoreSettings(config, {store: 'local', timeout: 3}, '/elsewhere')).to.include({
      uri: 'local',
      baseDir: '/elsewhere',
      timeoutSeconds: 3,
    })
    expect(resolveStoreSettings(loadConfig({cwd: tempDir()}), {}, '/x').uri).to.equal('.mlops/store')
  })

  it('a command with an invalid mlops.yaml → exit 2 with file:line:col, no stack trace', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'mlops.yaml'), 'store:\n  anonymous: maybe\n')
    const {error, stderr} = await runCommand(['model', 'list', '--config', join(dir, 'mlops.yaml')], {root})
    expect((error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.USAGE)
    expect(stderr).to.equal(`Error: ${join(dir, 'mlops.yaml')}:2:14: store.anonymous: expected boolean, got string "maybe"\n`)
  })

  it('--config that does not exist → exit 2', async () => {
    const {error, stderr} = await runCommand(['model', 'list', '--config', '/nonexistent/mlops.yaml'], {root})
    expect((error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.USAGE)
    expect(stderr).to.match(/^Error: config file \/nonexistent\/mlops\.yaml does not exist\n/)
  })

  it('MLOPS_STORE overrides store: in mlops.yaml', async () => {
    const dir = tempDir()
    const fromEnv = join(dir, 'env-store')
    writeFileSync(join(dir, 'mlops.yaml'), `store: ${join(dir, 'file-store')}\nmodel:\n  name: iris\n`)
    process.env.MLOPS_STORE = fromEnv
    try {
      const {result} = await runCommand<{uri: string}>(['model', 'push', fixture('iris_svc.onnx'), '--config', join(dir, 'mlops.yaml')], {
        root,
      })
      expect(result?.uri).to.equal(`file://${fromEnv}/iris/1/model.onnx`)
    } finally {
      delete process.env.MLOPS_STORE
    }
  })
})

describe('the built mlops.yaml validator (ajv standalone code, scripts/bundle.js)', () => {
  const cases: Array<[string, unknown]> = [
    [
      'a valid project',
      {name: 'iris', model: {name: 'iris'}, store: 'gs://b/p', deploy: {target: 'k8s', replicas: 2, resources: {requests: {cpu: '100m'}}}},
    ],
    ['an unknown key', {name: 'iris', modle: {name: 'iris'}}],
    ['a wrong type', {name: 'iris', deploy: {replicas: 'two'}}],
    ['a bad model name and an unknown target', {model: {name: 'Iris Model'}, deploy: {target: 'nomad'}}],
    ['a string too long, a negative port', {name: 'x'.repeat(300), deploy: {port: -1}}],
  ]
  for (const [what, values] of cases) {
    it(`gives exactly the errors ajv gives when compiling the schema at run time: ${what}`, async () => {
      const built = (await import(join(root, 'dist', 'config', 'schema-validator.js'))).default as ((v: unknown) => boolean) & {
        errors?: unknown
      }
      const compiled = (await import('../../src/config/schema-validator.js')).default
      expect(compiled(values)).to.equal(what === 'a valid project')
      expect(built(values)).to.equal(compiled(values))
      expect(JSON.parse(JSON.stringify(built.errors ?? null))).to.deep.equal(JSON.parse(JSON.stringify(compiled.errors ?? null)))
    })
  }

  it("the build output is ajv's standalone code, not the run-time compile: ajv's compiler is in no file with the validator", async () => {
    const {readFileSync} = await import('node:fs')
    const meta = JSON.parse(readFileSync(join(root, '.bundle-meta.json'), 'utf8')) as {
      outputs: Record<string, {inputs: Record<string, unknown>}>
    }
    const withValidator = Object.values(meta.outputs).filter(output => 'src/config/schema-validator.ts' in output.inputs)
    expect(withValidator).to.have.length(1)
    // Only ajv's run-time helper for string lengths may be there (esbuild may also put it in a chunk of its own).
    const ajvInputs = Object.keys(withValidator[0].inputs).filter(input => input.includes('node_modules/ajv/'))
    expect(ajvInputs.filter(input => input !== 'node_modules/ajv/dist/runtime/ucs2length.js')).to.deep.equal([])
  })
})
