import {expect} from 'chai'
import {readFileSync, readdirSync} from 'node:fs'
import {join, relative} from 'node:path'

import type {CommandResults} from '../../src/cli/json-results.js'
import type Init from '../../src/commands/init.js'
import type ImageBuild from '../../src/commands/image/build.js'
import type ImageCheck from '../../src/commands/image/check.js'
import type ImagePush from '../../src/commands/image/push.js'
import type ImageSecret from '../../src/commands/image/secret.js'
import type ModelAliasRm from '../../src/commands/model/alias/rm.js'
import type ModelAliasSet from '../../src/commands/model/alias/set.js'
import type ModelList from '../../src/commands/model/list.js'
import type ModelPublish from '../../src/commands/model/publish.js'
import type ModelPull from '../../src/commands/model/pull.js'
import type ModelPush from '../../src/commands/model/push.js'
import type ModelCompare from '../../src/commands/model/compare.js'
import type ModelReferenceAdd from '../../src/commands/model/reference/add.js'
import type ModelRm from '../../src/commands/model/rm.js'
import type ModelShow from '../../src/commands/model/show.js'
import type ModelWarm from '../../src/commands/model/warm.js'
import type Delete from '../../src/commands/delete.js'
import type Deploy from '../../src/commands/deploy.js'
import type Predict from '../../src/commands/predict.js'
import type Render from '../../src/commands/render.js'
import type Rollback from '../../src/commands/rollback.js'
import type Abort from '../../src/commands/abort.js'
import type Promote from '../../src/commands/promote.js'
import type Serve from '../../src/commands/serve.js'
import type Status from '../../src/commands/status.js'
import {checkJsonOutput, commandIdOf} from '../helpers/json-output.js'

const root = join(import.meta.dirname, '..', '..')

/** What a command's run() resolves to: its --json output. */
type Returned<C extends {prototype: {run(): Promise<unknown>}}> = Awaited<ReturnType<C['prototype']['run']>>
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false

// Compile-time: each command returns exactly the type src/cli/json-results.ts lists for it
// (tsc -p test fails otherwise, before any test runs).
const sameTypes: {[K in keyof CommandResults]: true} = {
  init: true satisfies Same<Returned<typeof Init>, CommandResults['init']>,
  'model push': true satisfies Same<Returned<typeof ModelPush>, CommandResults['model push']>,
  'model list': true satisfies Same<Returned<typeof ModelList>, CommandResults['model list']>,
  'model show': true satisfies Same<Returned<typeof ModelShow>, CommandResults['model show']>,
  'model pull': true satisfies Same<Returned<typeof ModelPull>, CommandResults['model pull']>,
  'model rm': true satisfies Same<Returned<typeof ModelRm>, CommandResults['model rm']>,
  'model publish': true satisfies Same<Returned<typeof ModelPublish>, CommandResults['model publish']>,
  'model alias set': true satisfies Same<Returned<typeof ModelAliasSet>, CommandResults['model alias set']>,
  'model alias rm': true satisfies Same<Returned<typeof ModelAliasRm>, CommandResults['model alias rm']>,
  'model reference add': true satisfies Same<Returned<typeof ModelReferenceAdd>, CommandResults['model reference add']>,
  'model compare': true satisfies Same<Returned<typeof ModelCompare>, CommandResults['model compare']>,
  'model warm': true satisfies Same<Returned<typeof ModelWarm>, CommandResults['model warm']>,
  'image build': true satisfies Same<Returned<typeof ImageBuild>, CommandResults['image build']>,
  'image push': true satisfies Same<Returned<typeof ImagePush>, CommandResults['image push']>,
  'image check': true satisfies Same<Returned<typeof ImageCheck>, CommandResults['image check']>,
  'image secret': true satisfies Same<Returned<typeof ImageSecret>, CommandResults['image secret']>,
  render: true satisfies Same<Returned<typeof Render>, CommandResults['render']>,
  deploy: true satisfies Same<Returned<typeof Deploy>, CommandResults['deploy']>,
  status: true satisfies Same<Returned<typeof Status>, CommandResults['status']>,
  rollback: true satisfies Same<Returned<typeof Rollback>, CommandResults['rollback']>,
  abort: true satisfies Same<Returned<typeof Abort>, CommandResults['abort']>,
  promote: true satisfies Same<Returned<typeof Promote>, CommandResults['promote']>,
  delete: true satisfies Same<Returned<typeof Delete>, CommandResults['delete']>,
  predict: true satisfies Same<Returned<typeof Predict>, CommandResults['predict']>,
  serve: true satisfies Same<Returned<typeof Serve>, CommandResults['serve']>,
}

function commandIds(dir = join(root, 'src', 'commands')): string[] {
  return readdirSync(dir, {withFileTypes: true}).flatMap(entry =>
    entry.isDirectory()
      ? commandIds(join(dir, entry.name))
      : [
          relative(join(root, 'src', 'commands'), join(dir, entry.name))
            .replace(/\.ts$/, '')
            .split('/')
            .join(' '),
        ],
  )
}

describe('--json results: one typed shape per command, a schema and docs generated from it', () => {
  it('every command but help has its result in src/cli/json-results.ts (a new command without one fails)', () => {
    const listed = Object.keys(sameTypes).sort()
    expect(
      commandIds()
        .filter(id => id !== 'help')
        .sort(),
    ).to.deep.equal(listed)
  })

  it('schemas/results.schema.json and docs/json.md are what scripts/json-schemas.js makes of the types (a type change without them fails)', async () => {
    const {generate} = (await import(join(root, 'scripts', 'json-schemas.js'))) as {generate: () => {schema: string; doc: string}}
    const {schema, doc} = generate()
    expect(readFileSync(join(root, 'schemas', 'results.schema.json'), 'utf8')).to.equal(schema)
    expect(readFileSync(join(root, 'docs', 'json.md'), 'utf8')).to.equal(doc)
  }).timeout(60_000)

  it('the CLI helper finds the command id of the arguments, the longest first', () => {
    expect(commandIdOf(['model', 'alias', 'set', 'iris', 'prod', '1', '--json'])).to.equal('model alias set')
    expect(commandIdOf(['deploy', '--target', 'k8s', '--json'])).to.equal('deploy')
    expect(commandIdOf(['model', 'list', 'iris', '--json'])).to.equal('model list')
    expect(commandIdOf(['nonsense', '--json'])).to.equal(undefined)
  })

  it('bad output: a result with a field of the wrong type, an unknown field or a missing one, or a failure without its code → the run fails', () => {
    const pushed = {
      name: 'iris',
      version: '1',
      ref: 'iris@1',
      uri: 'file:///s/iris/1',
      size: 10,
      sha256: 'a'.repeat(64),
      crc32c: 'x',
      seconds: 0.1,
    }
    const run =
      (stdout: unknown, code = 0) =>
      () =>
        checkJsonOutput(['model', 'push', 'm.onnx', '--json'], {code, stdout: JSON.stringify(stdout), stderr: ''})
    expect(run(pushed)).not.to.throw()
    expect(run({...pushed, size: '10'})).to.throw(/does not match the result of model push.*size/)
    expect(run({...pushed, extra: 1})).to.throw(/additional properties/)
    expect(run({...pushed, sha256: undefined})).to.throw(/sha256/)
    expect(run({error: {code: 'NOT_FOUND', exitCode: 3, message: 'no such model'}}, 3)).not.to.throw()
    expect(run({error: {exitCode: 3, message: 'no such model'}}, 3)).to.throw(/the failure shape.*code/)
    expect(() => checkJsonOutput(['model', 'list', '--json'], {code: 0, stdout: 'iris 3 versions', stderr: ''})).to.throw(
      /not one JSON document/,
    )
  })
})
