import {expect} from 'chai'
import {execFileSync} from 'node:child_process'
import {existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {runCli} from '../helpers/cli.js'
import {inspectModelFile} from '../../src/store/model-file.js'
import {fixture, listFiles, makeStore, tempDir} from '../helpers/stores.js'

/** What the operating system refuses because of a user's input: a documented exit code and the path, never "this is a bug". */
describe('foreseeable system errors get their exit code and name the path', function () {
  this.timeout(60_000)
  let dir: string
  let file: string

  beforeEach(() => {
    dir = tempDir()
    file = join(dir, 'a-file')
    writeFileSync(file, 'not a folder')
  })

  const noBug = (run: {stderr: string}) => expect(run.stderr).to.not.contain('this is a bug')

  it('bad input: model push to a store path that is a file → exit 2', async () => {
    const run = await runCli(['model', 'push', fixture('iris_svc.onnx'), '--name', 'iris', '--store', file])
    expect(run.code, run.stderr).to.equal(ExitCode.USAGE)
    expect(run.stderr).to.match(new RegExp(`^Error: a part of the path ${file}/iris/\\S* is a file, not a folder$`, 'm'))
    noBug(run)
  })

  it('bad input: model list of a store that is a file → exit 2; of a named store that does not exist → exit 3; the default folder before any push → no models, exit 0', async () => {
    const isFile = await runCli(['model', 'list', '--store', file])
    expect(isFile.code).to.equal(ExitCode.USAGE)
    expect(isFile.stderr).to.contain(`Error: store ${file} is a file, not a folder`)
    const missing = await runCli(['model', 'list', '--store', join(dir, 'typo')])
    expect(missing.code).to.equal(ExitCode.NOT_FOUND)
    expect(missing.stderr).to.contain(`Error: store ${join(dir, 'typo')} does not exist`)
    const fresh = await runCli(['model', 'list'], {}, dir)
    expect(fresh.code, fresh.stderr).to.equal(0)
    expect(fresh.stdout).to.match(/^No models in /)
  })

  it('bad input: model pull --to a destination under a file → exit 2, nothing written', async () => {
    const store = join(dir, 'store')
    expect((await runCli(['model', 'push', fixture('iris_svc.onnx'), '--name', 'iris', '--store', store])).code).to.equal(0)
    const before = listFiles(dir)
    const run = await runCli(['model', 'pull', 'iris@1', '--to', join(file, 'model.onnx'), '--store', store])
    expect(run.code, run.stderr).to.equal(ExitCode.USAGE)
    expect(run.stderr).to.contain(`is a file, not a folder`)
    noBug(run)
    // Nothing written: the file is still the file it was, and no temp file appeared beside it.
    expect(readFileSync(file, 'utf8')).to.equal('not a folder')
    expect(listFiles(dir)).to.deep.equal(before)
  })

  it('bad input: mlops init into a path under a file → exit 2', async () => {
    const run = await runCli(['init', join(file, 'project'), '--yes'])
    expect(run.code, run.stderr).to.equal(ExitCode.USAGE)
    expect(run.stderr).to.contain(join(file, 'project'))
    noBug(run)
  })

  it('bad input: mlops render --out to a file → exit 2 naming it, the file untouched', async () => {
    // A project render accepts (a gs:// store holding the model), so that --out is what it refuses.
    const store = await makeStore('gcs')
    await store.store.push({model: await inspectModelFile(fixture('iris_svc.onnx')), name: 'iris', metadata: {}, workDir: tempDir()})
    mkdirSync(join(dir, 'project'))
    writeFileSync(
      join(dir, 'project', 'mlops.yaml'),
      `name: iris\nstore:\n  uri: ${store.uri}\n  endpoint: ${store.env.MLOPS_GCS_ENDPOINT}\n`,
    )
    const rendered = await runCli(['render', '--out', join(dir, 'rendered'), '--model', 'iris@1'], {}, join(dir, 'project'))
    expect(rendered.code, rendered.stderr).to.equal(0)
    const run = await runCli(['render', '--out', file, '--model', 'iris@1'], {}, join(dir, 'project'))
    expect(run.code, run.stderr).to.equal(ExitCode.USAGE)
    expect(run.stderr).to.contain(file)
    noBug(run)
    expect(readFileSync(file, 'utf8')).to.equal('not a folder')
  })

  for (const [what, args, exitCode, message] of [
    [
      'a --sample of the wrong width',
      ['--sample', '[1, 2]'],
      ExitCode.USAGE,
      /--sample does not fit the model: row 0 has 2 values, the model expects 4/,
    ],
    [
      '--sample @FILE that does not exist',
      ['--sample', '@/nonexistent/sample.json'],
      ExitCode.NOT_FOUND,
      /no such file or folder: \/nonexistent\/sample\.json/,
    ],
    ['--host 999.1.1.1', ['--host', '999.1.1.1'], ExitCode.USAGE, /cannot listen on 999\.1\.1\.1: not an address of this machine/],
  ] as const) {
    it(`bad input: serve with ${what} → exit ${exitCode}, one clear line`, async () => {
      const run = await runCli(['serve', '--model', fixture('iris_svc.onnx'), '--port', '0', '--log-format', 'text', ...args])
      expect(run.code, run.stderr).to.equal(exitCode)
      expect(run.stderr).to.match(message)
      noBug(run)
    })
  }

  it("the loader's termination summary carries the documented code of a system error (a destination under a file)", async () => {
    const store = join(dir, 'store')
    expect((await runCli(['model', 'push', fixture('iris_svc.onnx'), '--name', 'iris', '--store', store])).code).to.equal(0)
    const summary = join(dir, 'summary.json')
    const run = await runCli([
      'model',
      'pull',
      'iris@1',
      '--to',
      join(file, 'model.onnx'),
      '--store',
      store,
      '--termination-log',
      summary,
      '--log-format',
      'json',
    ])
    expect(run.code).to.equal(ExitCode.USAGE)
    // The summary itself, as Kubernetes shows it: not only that a file was written.
    const written = JSON.parse(readFileSync(summary, 'utf8')) as {ok: boolean; ref: string; error: Record<string, unknown>}
    expect(written).to.include({ok: false, ref: 'iris@1'})
    expect(written.error).to.deep.equal({code: 'USAGE', exitCode: ExitCode.USAGE, message: `${file} is a file, not a folder`})
    expect(readFileSync(summary, 'utf8').trim().split('\n')).to.have.length(1)
  })
})

describe('a bad value from the environment is blamed on the variable, not the flag', () => {
  for (const [variable, value, args, message] of [
    [
      'MLOPS_STORE_TIMEOUT',
      'abc',
      ['model', 'list'],
      /^Error: MLOPS_STORE_TIMEOUT=abc \(the environment variable for --store-timeout\): Expected an integer but received: abc\nHint: fix or unset MLOPS_STORE_TIMEOUT\n$/,
    ],
    [
      'MLOPS_TARGET',
      'moon',
      ['status'],
      /^Error: MLOPS_TARGET=moon \(the environment variable for --target\): Expected --target=moon to be one of: local, docker, k8s\nHint: fix or unset MLOPS_TARGET\n$/,
    ],
  ] as const) {
    it(`bad input: ${variable}=${value} → exit 2 naming ${variable}`, async () => {
      const run = await runCli([...args], {[variable]: value})
      expect(run.code).to.equal(ExitCode.USAGE)
      expect(run.stderr).to.match(message)
    })
  }

  it('the same bad value as a flag is blamed on the flag', async () => {
    const run = await runCli(['status', '--target', 'moon'])
    expect(run.code).to.equal(ExitCode.USAGE)
    expect(run.stderr).to.match(/^Error: Expected --target=moon to be one of/)
  })
})

describe('reserved names', () => {
  for (const name of ['latest', 'aliases']) {
    it(`bad input: a model named "${name}" → exit 2, nothing pushed`, async () => {
      const store = join(tempDir(), 'store')
      const run = await runCli(['model', 'push', fixture('iris_svc.onnx'), '--name', name, '--store', store])
      expect(run.code).to.equal(ExitCode.USAGE)
      expect(run.stderr).to.contain(`Error: "${name}" is reserved and cannot be used as a model name`)
      expect(existsSync(store)).to.equal(false)
    })
  }
})

describe('one corrupt entry in a store does not hide the others', () => {
  it('bad input from the store: a corrupt manifest and a corrupt alias → model list still lists the rest, marks them, names them on stderr, exit 0', async () => {
    const store = join(tempDir(), 'store')
    for (const model of ['iris_svc.onnx', 'iris_logreg.onnx'])
      expect((await runCli(['model', 'push', fixture(model), '--name', 'iris', '--store', store])).code).to.equal(0)
    expect((await runCli(['model', 'alias', 'set', 'iris@2', 'prod', '--store', store])).code).to.equal(0)
    writeFileSync(join(store, 'iris', '1', 'manifest.json'), '{"name": "iris", "version": "1", "file": "../x"')
    writeFileSync(join(store, 'iris', 'aliases', 'staging'), '{"version": "../../etc"}')
    const versions = await runCli(['model', 'list', 'iris', '--store', store])
    expect(versions.code, versions.stderr).to.equal(0)
    expect(versions.stdout).to.match(/^1 +- +- +CORRUPT +-$/m)
    expect(versions.stdout).to.match(/^2 +519 B .* prod$/m)
    expect(versions.stderr).to.match(/^Warning: iris@1: the manifest in .* is corrupt: not JSON/m)
    const models = await runCli(['model', 'list', '--store', store, '--json'])
    expect(models.code).to.equal(0)
    const [iris] = JSON.parse(models.stdout).models
    expect(iris).to.deep.include({name: 'iris', versions: 2, aliases: {prod: '2'}})
    expect(iris.problems).to.have.length(1)
    expect(iris.problems[0]).to.match(/^iris alias staging in .* is corrupt/)
  })
})

describe('a store entry or a destination that is not a regular file', () => {
  it('bad input from the store: images.json is a folder → model show still shows the version, exit 0, the record reported corrupt', async () => {
    const store = join(tempDir(), 'store')
    expect((await runCli(['model', 'push', fixture('iris_logreg.onnx'), '--name', 'iris', '--store', store])).code).to.equal(0)
    mkdirSync(join(store, 'iris', '1', 'images.json'))
    const show = await runCli(['model', 'show', 'iris@1', '--store', store])
    expect(show.code, show.stderr).to.equal(0)
    expect(show.stdout).to.match(/^iris@1\n/)
    expect(show.stdout).to.match(
      /^ {2}image +iris@1: the published images record in .* is corrupt: iris\/1\/images.json in .* is a folder, not a stored object$/m,
    )
    const json = await runCli(['model', 'show', 'iris@1', '--store', store, '--json'])
    expect(JSON.parse(json.stdout)).to.deep.include({name: 'iris', version: '1', images: []})
    expect(JSON.parse(json.stdout).imagesProblem).to.match(/is a folder, not a stored object$/)
  })

  for (const [what, make] of [
    ['a named pipe (a FIFO, as a device node would be)', (path: string) => execFileSync('mkfifo', [path])],
    ['a symbolic link to another file', (path: string) => symlinkSync(fixture('iris_svc.onnx'), path)],
  ] as const) {
    it(`bad input: model pull --to ${what} → exit 2, the node left as it was`, async () => {
      const dir = tempDir()
      const store = join(dir, 'store')
      expect((await runCli(['model', 'push', fixture('iris_logreg.onnx'), '--name', 'iris', '--store', store])).code).to.equal(0)
      const destination = join(dir, 'model.onnx')
      make(destination)
      const before = lstatSync(destination)
      const pull = await runCli(['model', 'pull', 'iris@1', '--to', destination, '--store', store])
      expect(pull.code).to.equal(ExitCode.USAGE)
      expect(pull.stderr.split('\n')[0]).to.match(
        /^Error: .*model\.onnx is (a symbolic link|not a regular file \(a device, pipe or socket\)); mlops model pull writes only to a regular file or a new path$/,
      )
      const after = lstatSync(destination)
      expect([after.ino, after.mode]).to.deep.equal([before.ino, before.mode])
      expect(readdirSync(dir).sort()).to.deep.equal(['model.onnx', 'store'])
    })
  }
})

describe('a labels file that does not fit the model is refused, never served', () => {
  for (const [what, labels] of [
    ['fewer classes (2 for 3)', ['setosa', 'versicolor']],
    ['more classes (4 for 3)', ['a', 'b', 'c', 'd']],
    ['more classes (5 for 3)', ['a', 'b', 'c', 'd', 'e']],
    ['indexes that skip one (0, 1, 3)', {0: 'a', 1: 'b', 3: 'c'}],
    ['indexes 0, 1, 5', {0: 'a', 1: 'b', 5: 'c'}],
  ] as const) {
    // iris_svc and iris_rf are ZipMap classifiers: only their graph states the classes.
    it(`bad input: labels with ${what} → push exits 2 and stores nothing (probabilities in the signature, or ZipMap); serve exits 2 before it is ready`, async () => {
      const dir = tempDir()
      const file = join(dir, 'labels.json')
      writeFileSync(file, JSON.stringify(labels))
      const store = join(dir, 'store')
      for (const model of ['iris_logreg.onnx', 'iris_svc.onnx', 'iris_rf.onnx']) {
        const push = await runCli(['model', 'push', fixture(model), '--name', 'iris', '--labels', file, '--store', store])
        expect(push.code, model).to.equal(ExitCode.USAGE)
        expect(push.stderr.split('\n')[0]).to.match(
          /^Error: labels file .* does not fit .*\.onnx: the labels name \d+ class(es)? \(.*\), the model has 3 \(0 to 2\)$/,
        )
        expect(existsSync(store), model).to.equal(false)
      }
      // A ZipMap classifier states its classes only in the graph: serve checks them once it has read it.
      const serve = await runCli(['serve', '--model', fixture('iris_svc.onnx'), '--labels', file, '--port', '0', '--log-format', 'text'])
      expect(serve.code).to.equal(ExitCode.USAGE)
      expect(serve.stderr).to.match(/^Error: labels file .* does not fit .*iris_svc\.onnx: .*the model has 3 \(0 to 2\)$/m)
    })
  }
})

describe('render --set values that are not one YAML value', function () {
  this.timeout(60_000)
  let project: string

  before(async () => {
    // A project render accepts (a gs:// store holding the model), so that --set is what it refuses.
    const store = await makeStore('gcs')
    await store.store.push({model: await inspectModelFile(fixture('iris_svc.onnx')), name: 'iris', metadata: {}, workDir: tempDir()})
    project = tempDir()
    writeFileSync(join(project, 'mlops.yaml'), `name: iris\nstore:\n  uri: ${store.uri}\n  endpoint: ${store.env.MLOPS_GCS_ENDPOINT}\n`)
    const rendered = await runCli(['render', '--model', 'iris@1', '--set', 'replicas=3'], {}, project)
    expect(rendered.code, rendered.stderr).to.equal(0)
  })

  for (const [input, value, reason] of [
    ['a newline and YAML keys (replicas=2⏎kind: Secret)', '2\nkind: Secret', 'its value spans lines'],
    ['a carriage return (replicas=2␍)', '2\r', 'its value spans lines'],
    ['an unclosed flow list (replicas=[1, 2)', '[1, 2', 'its value is not YAML'],
    ['an unclosed quote (replicas="x)', '"x', 'its value is not YAML'],
    ['an undefined alias (replicas=*a)', '*a', 'its value is not YAML'],
  ])
    it(`bad input: render --set with ${input} → exit 2, one Error: line naming the key, nothing rendered (was a YAML parser error, exit 1)`, async () => {
      const out = join(tempDir(), 'rendered')
      const run = await runCli(['render', '--model', 'iris@1', '--set', `replicas=${value}`, '--out', out], {}, project)
      expect(run.code, run.stderr).to.equal(ExitCode.USAGE)
      expect(run.stderr.split('\n')[0]).to.equal(
        `Error: invalid --set replicas: ${reason}${reason.endsWith('lines') ? ' (one YAML value per --set)' : ''}`,
      )
      expect(run.stderr).to.match(/^Error: [^\n]+\nHint: [^\n]+\n$/)
      expect(run.stdout).to.equal('')
      expect(existsSync(out)).to.equal(false)
    })
})

describe('an unknown command', () => {
  it('bad input: a typo (mlops modle list) → exit 2, one Error: line naming only the unknown words, the closest command as a hint', async () => {
    const run = await runCli(['modle', 'list'])
    expect(run.code).to.equal(ExitCode.USAGE)
    expect(run.stderr).to.equal('Error: mlops has no command "modle"\nHint: did you mean "mlops model"? mlops --help lists the commands\n')
  })

  it('bad input: arguments after an unknown subcommand are not echoed (mlops model alias x http://u:secret@h)', async () => {
    const run = await runCli(['model', 'alias', 'x', 'http://u:secret-value@127.0.0.1:1'])
    expect(run.code).to.equal(ExitCode.USAGE)
    expect(run.stderr).to.match(/^Error: mlops has no command "model alias x"\n/)
    expect(run.stderr).to.not.contain('secret-value')
  })
})

describe('a --gcs-endpoint that is not a GCS API', () => {
  it('bad input: a web server answering HTML → exit 2 saying so, not "bucket does not exist"', async () => {
    const {createServer} = await import('node:http')
    const server = createServer((_request, response) => {
      response.writeHead(404, {'content-type': 'text/html; charset=utf-8'}).end('<!DOCTYPE html><title>Not Found</title>')
    }).listen(0, '127.0.0.1')
    await new Promise(resolve => server.once('listening', resolve))
    try {
      const endpoint = `http://127.0.0.1:${(server.address() as {port: number}).port}`
      const run = await runCli(['model', 'list', '--store', 'gs://some-bucket', '--gcs-endpoint', endpoint])
      expect(run.code).to.equal(ExitCode.USAGE)
      expect(run.stderr).to.contain(`Error: ${endpoint} answered HTTP 404 with text/html: it is not a GCS JSON API`)
    } finally {
      server.close()
    }
  })

  /** A server answering every request with `answer` (status 200, JSON); the CLI run against it as a GCS endpoint. */
  async function againstServer(answer: (url: URL) => unknown, args: string[]) {
    const {createServer} = await import('node:http')
    const server = createServer((request, response) => {
      response.writeHead(200, {'content-type': 'application/json'}).end(JSON.stringify(answer(new URL(request.url!, 'http://x'))))
    }).listen(0, '127.0.0.1')
    await new Promise(resolve => server.once('listening', resolve))
    try {
      const endpoint = `http://127.0.0.1:${(server.address() as {port: number}).port}`
      return await runCli([...args, '--store', 'gs://some-bucket/models', '--gcs-endpoint', endpoint])
    } finally {
      server.close()
    }
  }

  for (const [input, listing] of [
    ['models/../../etc/passwd alone (under the prefix, then climbing out)', {items: [{name: 'models/../../etc/passwd'}]}],
    ['the prefix models/../ alone', {prefixes: ['models/../']}],
    ['the prefix models/./ alone', {prefixes: ['models/./']}],
    ['/etc/shadow alone (outside the prefix)', {items: [{name: '/etc/shadow'}]}],
    ['the prefix elsewhere/ alone', {prefixes: ['elsewhere/']}],
    ['a name that is a number', {items: [{name: 5}]}],
  ] as const) {
    it(`bad input: a listing naming ${input} → exit 2, nothing listed`, async () => {
      const run = await againstServer(() => listing, ['model', 'list'])
      expect(run.code).to.equal(ExitCode.USAGE)
      expect(run.stdout).to.equal('')
      expect(run.stderr.split('\n')[0]).to.equal(
        'Error: the storage endpoint answered a listing of models/ with names outside it, with . or .. segments, or not strings',
      )
    })
  }

  it('bad input: a listing whose nextPageToken repeats (the same token for ever) → exit 2 after the second page, not an endless loop', async () => {
    let repeated = 0
    const run = await againstServer(
      url => {
        if (url.searchParams.get('pageToken') === 'same') repeated++
        return {items: [], nextPageToken: 'same'}
      },
      ['model', 'list'],
    )
    expect(run.code).to.equal(ExitCode.USAGE)
    expect(run.stderr.split('\n')[0]).to.equal(
      'Error: the storage endpoint answered a listing of gs://some-bucket/models with a page token it already gave: it is not a GCS JSON API',
    )
    // The page asked for with the token was the last one asked for.
    expect(repeated).to.equal(1)
  })

  it('bad input: a listing whose nextPageToken is a number (5) → exit 2', async () => {
    const run = await againstServer(() => ({items: [], nextPageToken: 5}), ['model', 'list'])
    expect(run.code).to.equal(ExitCode.USAGE)
    expect(run.stderr).to.match(/^Error: the storage endpoint answered a listing of models\/ with names outside it/)
  })

  it('bad input: a plain web server answering 404 with no content type (Not Found) → exit 2 "not a GCS JSON API", not "bucket does not exist"', async () => {
    const {createServer} = await import('node:http')
    const server = createServer((_request, response) => {
      response.writeHead(404).end('Not Found')
    }).listen(0, '127.0.0.1')
    await new Promise(resolve => server.once('listening', resolve))
    try {
      const endpoint = `http://127.0.0.1:${(server.address() as {port: number}).port}`
      for (const args of [
        ['model', 'list'],
        ['model', 'show', 'iris@1'],
      ]) {
        const run = await runCli([...args, '--store', 'gs://some-bucket', '--gcs-endpoint', endpoint])
        expect(run.code, args.join(' ')).to.equal(ExitCode.USAGE)
        expect(run.stderr.split('\n')[0]).to.equal(`Error: ${endpoint} answered HTTP 404 with no content type: it is not a GCS JSON API`)
      }
    } finally {
      server.close()
    }
  })

  it('bad input: MLOPS_GCS_ANONYMOUS=maybe → exit 2 naming the variable (was taken as "send credentials")', async () => {
    const run = await runCli(['model', 'list', '--store', 'gs://some-bucket', '--store-timeout', '1'], {MLOPS_GCS_ANONYMOUS: 'maybe'})
    expect(run.code).to.equal(ExitCode.USAGE)
    expect(run.stderr.split('\n')[0]).to.equal('Error: MLOPS_GCS_ANONYMOUS must be true or false, got "maybe"')
  })

  it('bad input: object metadata with a size that is no number and a generation that is no integer → exit 2, no file written', async () => {
    const dir = tempDir()
    const run = await againstServer(
      () => ({name: 'models/iris/1/manifest.json', size: 'huge', generation: '1; rm -rf /'}),
      ['model', 'pull', 'iris@1', '--to', join(dir, 'model.onnx')],
    )
    expect(run.code).to.equal(ExitCode.USAGE)
    expect(run.stderr.split('\n')[0]).to.equal(
      'Error: the storage endpoint answered an object lookup with metadata that is not a GCS object (size, generation)',
    )
    expect(existsSync(join(dir, 'model.onnx'))).to.equal(false)
  })
})
