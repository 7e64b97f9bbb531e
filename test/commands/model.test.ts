import {runCommand} from '@oclif/test'
import {expect} from 'chai'
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {type FakeGcs} from '../env/fake-gcs.js'
import {sharedGcs} from '../env/global.js'
import {STORE_KINDS, type StoreFixture, fixture, listFiles, makeStore, tempDir} from '../helpers/stores.js'

const root = join(import.meta.dirname, '..', '..')
const TOO_SHORT_BUCKET = 'ab'

/** Runs `mlops ARGS` in-process against a store; returns exit code, parsed JSON and output. */
async function mlops(s: StoreFixture, args: string[]) {
  const storeArgs = ['--store', s.uri, ...(s.env.MLOPS_GCS_ENDPOINT ? ['--gcs-endpoint', s.env.MLOPS_GCS_ENDPOINT] : [])]
  const {error, stdout, stderr} = await runCommand([...args, ...storeArgs], {root})
  const exitCode = error ? ((error as {oclif?: {exit?: number}}).oclif?.exit ?? 1) : 0
  let json: any
  if (args.includes('--json')) json = JSON.parse(stdout)
  return {exitCode, json, stdout, stderr}
}

for (const kind of STORE_KINDS) {
  describe(`mlops model commands (${kind})`, () => {
    let s: StoreFixture

    beforeEach(async () => {
      s = await makeStore(kind)
    })

    it('push, list, show, alias, pull and rm: the whole lifecycle with --json', async () => {
      const push = await mlops(s, [
        'model',
        'push',
        fixture('iris_svc.onnx'),
        '--name',
        'iris',
        '--labels',
        fixture('iris_labels.json'),
        '--meta',
        'accuracy=0.97',
        '--alias',
        'prod',
        '--json',
      ])
      expect(push.exitCode).to.equal(0)
      expect(push.json).to.include({name: 'iris', version: '1', ref: 'iris@1', size: 2486, alias: 'prod'})
      await mlops(s, ['model', 'push', fixture('iris_rf.onnx'), '--name', 'iris'])

      const models = await mlops(s, ['model', 'list', '--json'])
      expect(models.json.models).to.deep.equal([{name: 'iris', versions: 2, latest: '2', aliases: {prod: '1'}}])
      const versions = await mlops(s, ['model', 'list', 'iris'])
      expect(versions.stdout).to.match(/^VERSION\s+SIZE\s+CREATED\s+SHA256\s+ALIASES\n1\s+2\.4 KiB\s+\S+\s+d1f497a1f053\s+prod\n2\s+/)

      const show = await mlops(s, ['model', 'show', 'iris@prod', '--json'])
      expect(show.json).to.include({
        name: 'iris',
        version: '1',
        sha256: 'd1f497a1f053d7cc43830cc84d0ecdc65e2dd370a4d3dedd4a49b13523e3a067',
        size: 2486,
      })
      expect(show.json.onnx.outputs[1].type).to.equal('seq(map(int64,tensor(float)))')
      const human = await mlops(s, ['model', 'show', 'iris'])
      expect(human.stdout).to.match(/^iris@2\n/)

      const dir = tempDir()
      const pull = await mlops(s, [
        'model',
        'pull',
        'iris@prod',
        '--to',
        join(dir, 'model.onnx'),
        '--labels-to',
        join(dir, 'labels.json'),
        '--json',
      ])
      expect(pull.json).to.include({ref: 'iris@prod', version: '1', skipped: false, bytes: 2486})
      expect(Object.keys(pull.json).sort()).to.deep.equal([
        'bytes',
        'labelsPath',
        'name',
        'path',
        'ref',
        'seconds',
        'sha256',
        'skipped',
        'version',
      ])
      const again = await mlops(s, ['model', 'pull', 'iris@1', '--to', join(dir, 'model.onnx')])
      expect(again.stdout).to.match(/iris@1 up to date at/)

      const moved = await mlops(s, ['model', 'alias', 'set', 'iris@2', 'prod', '--json'])
      expect(moved.json).to.include({alias: 'prod', version: '2', previous: '1'})
      const removed = await mlops(s, ['model', 'rm', 'iris@1', '--yes', '--json'])
      expect(removed.json).to.include({removed: true})
      expect((await mlops(s, ['model', 'alias', 'rm', 'iris', 'prod'])).exitCode).to.equal(0)
      expect((await mlops(s, ['model', 'list', 'iris', '--json'])).json.versions.map((v: {version: string}) => v.version)).to.deep.equal([
        '2',
      ])
    })
  })
}

describe('mlops model push: bad inputs (exit code, one-line message, nothing written)', () => {
  let s: StoreFixture
  let dir: string
  let cwd: string
  let gcs: FakeGcs

  before(async () => {
    gcs = await sharedGcs()
    // A name GCS refuses (2 characters) that the emulator accepts: a push that let it through would land there.
    await gcs.createBucket(TOO_SHORT_BUCKET).catch((error: Error) => {
      if (!/HTTP 409/.test(error.message)) throw error
    })
  })

  beforeEach(async () => {
    s = await makeStore('local')
    dir = tempDir()
    cwd = tempDir()
  })

  /** Where a case's push would have written: the test's store, unless the case names its own. */
  type Written = () => Promise<string[]>
  const cases: Array<{name: string; args: () => string[]; exitCode: number; message: RegExp; written?: Written}> = [
    {
      name: 'missing file',
      args: () => [join(dir, 'nope.onnx'), '--name', 'iris'],
      exitCode: ExitCode.NOT_FOUND,
      message: /model file .*nope\.onnx does not exist/,
    },
    {
      name: 'a folder instead of a file',
      args: () => [dir, '--name', 'iris'],
      exitCode: ExitCode.USAGE,
      message: /is a folder, not a model file/,
    },
    {name: 'empty file', args: () => [fixture('empty.onnx'), '--name', 'iris'], exitCode: ExitCode.INTEGRITY, message: /is empty/},
    {
      name: 'random bytes named .onnx',
      args: () => [fixture('random.onnx'), '--name', 'iris'],
      exitCode: ExitCode.INTEGRITY,
      message: /not a valid ONNX model/,
    },
    {
      name: 'truncated ONNX',
      args: () => [fixture('truncated.onnx'), '--name', 'iris'],
      exitCode: ExitCode.INTEGRITY,
      message: /not a valid ONNX model .*remain/,
    },
    {
      name: 'invalid name ../x',
      args: () => [fixture('iris_svc.onnx'), '--name', '../x'],
      exitCode: ExitCode.USAGE,
      message: /invalid model name "\.\.\/x"/,
    },
    {
      name: 'invalid name with a slash',
      args: () => [fixture('iris_svc.onnx'), '--name', 'team/iris'],
      exitCode: ExitCode.USAGE,
      message: /invalid model name "team\/iris"/,
    },
    {
      name: 'invalid name of 65 characters',
      args: () => [fixture('iris_svc.onnx'), '--name', 'a'.repeat(65)],
      exitCode: ExitCode.USAGE,
      message: /\(65 characters\): use 1-64 characters/,
    },
    {
      name: 'invalid version starting with a dot',
      args: () => [fixture('iris_svc.onnx'), '--name', 'iris', '--version', '.1'],
      exitCode: ExitCode.USAGE,
      message: /invalid version "\.1"/,
    },
    {
      name: 'reserved version "latest"',
      args: () => [fixture('iris_svc.onnx'), '--name', 'iris', '--version', 'latest'],
      exitCode: ExitCode.USAGE,
      message: /reserved/,
    },
    {
      name: 'numeric alias',
      args: () => [fixture('iris_svc.onnx'), '--name', 'iris', '--alias', '3'],
      exitCode: ExitCode.USAGE,
      message: /cannot be a plain number/,
    },
    {
      name: 'labels file that is not JSON',
      args: () => [fixture('iris_svc.onnx'), '--name', 'iris', '--labels', fixture('iris_svc.onnx')],
      exitCode: ExitCode.USAGE,
      message: /labels file .* is not valid JSON/,
    },
    {
      name: 'labels file with the wrong shape',
      args: () => [fixture('iris_svc.onnx'), '--name', 'iris', '--labels', fixture('expected.json')],
      exitCode: ExitCode.USAGE,
      message: /must map class indexes to label strings/,
    },
    {
      name: 'missing labels file',
      args: () => [fixture('iris_svc.onnx'), '--name', 'iris', '--labels', join(dir, 'labels.json')],
      exitCode: ExitCode.NOT_FOUND,
      message: /labels file .* does not exist/,
    },
    {
      name: '--meta without =',
      args: () => [fixture('iris_svc.onnx'), '--name', 'iris', '--meta', 'accuracy'],
      exitCode: ExitCode.USAGE,
      message: /invalid --meta "accuracy"/,
    },
    {
      name: 'no --name and no model.name',
      args: () => [fixture('iris_svc.onnx')],
      exitCode: ExitCode.USAGE,
      message: /no model name: pass --name NAME/,
    },
    // Taken as a folder path, s3://bucket would be the folder s3:/bucket below the working folder.
    {
      name: 'unsupported store scheme s3://',
      args: () => [fixture('iris_svc.onnx'), '--name', 'iris', '--store', 's3://bucket'],
      exitCode: ExitCode.USAGE,
      message: /unsupported store s3:\/\/bucket/,
      written: async () => listFiles(cwd),
    },
    {
      name: `invalid bucket name gs://${TOO_SHORT_BUCKET} (2 characters)`,
      args: () => [fixture('iris_svc.onnx'), '--name', 'iris', '--store', `gs://${TOO_SHORT_BUCKET}/models`, '--gcs-endpoint', gcs.url],
      exitCode: ExitCode.USAGE,
      message: /not a valid bucket name/,
      written: async () => gcs.listObjects(TOO_SHORT_BUCKET),
    },
    // The emulator refuses this name as GCS does: nothing can be written there, and no bucket may appear.
    {
      name: 'invalid bucket name gs://Bad_Bucket (upper case, underscore)',
      args: () => [fixture('iris_svc.onnx'), '--name', 'iris', '--store', 'gs://Bad_Bucket', '--gcs-endpoint', gcs.url],
      exitCode: ExitCode.USAGE,
      message: /"Bad_Bucket" is not a valid bucket name/,
      written: async () => (await gcs.listBuckets()).filter(name => name.toLowerCase() === 'bad_bucket'),
    },
  ]

  for (const c of cases) {
    it(`${c.name} → exit ${c.exitCode}`, async () => {
      const args = c.args()
      const storeIndex = args.indexOf('--store')
      // From a working folder of its own: a relative path the command made of its input would land there.
      const previous = process.cwd()
      process.chdir(cwd)
      let result: Awaited<ReturnType<typeof runCommand>>
      try {
        result = await runCommand(['model', 'push', ...args, ...(storeIndex === -1 ? ['--store', s.uri] : [])], {root})
      } finally {
        process.chdir(previous)
      }

      const {error, stderr, stdout} = result
      expect((error as {oclif?: {exit?: number}})?.oclif?.exit).to.equal(c.exitCode)
      const [first, ...rest] = stderr.trim().split('\n')
      expect(first).to.match(/^Error: /)
      expect(first).to.match(c.message)
      expect(rest.every(line => line.startsWith('Hint: '))).to.equal(true, `only a hint may follow the error line:\n${stderr}`)
      expect(stdout).to.equal('')
      expect(await (c.written ?? (async () => s.keys()))(), 'what the push wrote where it would have written').to.deep.equal([])
      expect(listFiles(cwd), 'what the push wrote in its working folder').to.deep.equal([])
    })
  }

  it('existing version → exit 4, store unchanged', async () => {
    await runCommand(['model', 'push', fixture('iris_svc.onnx'), '--name', 'iris', '--store', s.uri], {root})
    const before = await s.keys()
    const manifest = await s.read('iris/1/manifest.json')
    const {error, stderr} = await runCommand(
      ['model', 'push', fixture('iris_rf.onnx'), '--name', 'iris', '--version', '1', '--store', s.uri],
      {root},
    )
    expect((error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.CONFLICT)
    expect(stderr).to.match(/^Error: iris@1 already exists; pushed versions are immutable\nHint: push under a new version/)
    expect(await s.keys()).to.deep.equal(before)
    expect(await s.read('iris/1/manifest.json')).to.deep.equal(manifest)
  })

  it('--json error: one JSON object on stdout with code, exitCode, message and suggestion', async () => {
    const {stdout} = await runCommand(['model', 'show', 'iris@3', '--json', '--store', s.uri], {root})
    expect(JSON.parse(stdout)).to.deep.equal({
      error: {
        code: 'NOT_FOUND',
        exitCode: 3,
        message: `model "iris" not found in ${s.store.uri}`,
        suggestion: 'the store is empty; push a model with: mlops model push FILE --name NAME',
      },
    })
  })
})

describe('mlops model show / pull / alias / rm: bad inputs', () => {
  let s: StoreFixture

  before(async () => {
    s = await makeStore('local')
    await runCommand(['model', 'push', fixture('iris_svc.onnx'), '--name', 'iris', '--alias', 'prod', '--store', s.uri], {root})
  })

  const exitOf = async (args: string[]) => {
    const {error, stderr} = await runCommand([...args, '--store', s.uri], {root})
    return {exitCode: (error as {oclif?: {exit?: number}})?.oclif?.exit ?? 0, stderr}
  }

  it('unknown name → exit 3 with a did-you-mean', async () => {
    const {exitCode, stderr} = await exitOf(['model', 'show', 'irsi@1'])
    expect(exitCode).to.equal(ExitCode.NOT_FOUND)
    expect(stderr).to.contain('Hint: did you mean "iris"?')
  })

  it('unknown version → exit 3 listing versions and aliases', async () => {
    const {exitCode, stderr} = await exitOf(['model', 'pull', 'iris@9', '--to', join(tempDir(), 'm.onnx')])
    expect(exitCode).to.equal(ExitCode.NOT_FOUND)
    expect(stderr).to.contain('Hint: versions: 1; aliases: prod')
  })

  it('unknown alias → exit 3 (alias rm)', async () => {
    expect((await exitOf(['model', 'alias', 'rm', 'iris', 'staging'])).exitCode).to.equal(ExitCode.NOT_FOUND)
  })

  it('pull with no --to → exit 2 naming the flag', async () => {
    const {exitCode, stderr} = await exitOf(['model', 'pull', 'iris@1'])
    expect(exitCode).to.equal(ExitCode.USAGE)
    expect(stderr).to.match(/Missing required flag to/)
  })

  it('rm while an alias points at it → exit 4 naming the alias', async () => {
    const {exitCode, stderr} = await exitOf(['model', 'rm', 'iris@1', '--yes'])
    expect(exitCode).to.equal(ExitCode.CONFLICT)
    expect(stderr).to.contain('Hint: mlops model alias rm iris prod')
  })

  it('rm without --yes and without a terminal → exit 2, nothing deleted', async () => {
    await runCommand(['model', 'push', fixture('iris_rf.onnx'), '--name', 'iris', '--store', s.uri], {root})
    const {exitCode, stderr} = await exitOf(['model', 'rm', 'iris@2'])
    expect(exitCode).to.equal(ExitCode.USAGE)
    expect(stderr).to.contain('Hint: pass --yes to confirm')
    expect(await s.read('iris/2/manifest.json')).to.not.equal(undefined)
  })

  it('rm of an alias instead of a version → exit 2', async () => {
    const {exitCode, stderr} = await exitOf(['model', 'rm', 'iris@prod', '--yes'])
    expect(exitCode).to.equal(ExitCode.USAGE)
    expect(stderr).to.equal('Error: prod is an alias of iris@1; rm takes a version\nHint: mlops model rm iris@1\n')
  })

  it('corrupted object → pull exit 5, destination untouched', async () => {
    const bytes = readFileSync(fixture('iris_svc.onnx'))
    bytes[10] ^= 1
    await s.corrupt('iris/1/model.onnx', bytes)
    const dir = tempDir()
    mkdirSync(join(dir, 'work'))
    writeFileSync(join(dir, 'work', 'model.onnx'), 'old')
    const {exitCode} = await exitOf(['model', 'pull', 'iris@1', '--to', join(dir, 'work', 'model.onnx')])
    expect(exitCode).to.equal(ExitCode.INTEGRITY)
    expect(listFiles(dir)).to.deep.equal(['work/model.onnx'])
    expect(readFileSync(join(dir, 'work', 'model.onnx'), 'utf8')).to.equal('old')
  })
})
