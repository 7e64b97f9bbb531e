import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {cpSync, readFileSync, readdirSync, writeFileSync} from 'node:fs'
import {builtinModules} from 'node:module'
import {join} from 'node:path'

import {runCli} from '../helpers/cli.js'
import {fixture, tempDir} from '../helpers/stores.js'

const root = join(import.meta.dirname, '..', '..')
const dist = join(root, 'dist')
// What scripts/bundle.js leaves outside, stated again: a new package left outside the bundle fails here until it is added.
const EXTERNAL = ['onnxruntime-node', '@node-rs/crc32', 'typescript', 'ts-node']
// require()d inside try/catch by ws and node-fetch, not installed: their users fall back without them.
const OPTIONAL = ['bufferutil', 'utf-8-validate', 'encoding']
const files = (readdirSync(dist, {recursive: true}) as string[]).filter(name => name.endsWith('.js'))

describe('the built CLI is a bundle (scripts/bundle.js, run by npm run build)', () => {
  it('every file in dist/ imports only its own chunks, Node built-ins and the native addons left outside (esbuild metafile)', () => {
    const meta = JSON.parse(readFileSync(join(root, '.bundle-meta.json'), 'utf8')) as {
      outputs: Record<string, {imports: Array<{path: string; kind: string; external?: boolean}>}>
    }
    const builtins = new Set(builtinModules)
    const outside = new Set<string>()
    for (const [file, output] of Object.entries(meta.outputs))
      for (const {path, external} of output.imports) {
        if (!external || path.startsWith('node:') || builtins.has(path)) continue
        const packageName = path.startsWith('@') ? path.split('/').slice(0, 2).join('/') : path.split('/')[0]
        if (!EXTERNAL.includes(packageName) && !OPTIONAL.includes(packageName)) outside.add(`${file}: ${path}`)
      }
    expect([...outside]).to.deep.equal([])
    expect(files.length).to.be.greaterThan(20)
  })

  it("every command in oclif's manifest is an entry point of the bundle, and bin/run.js starts from dist/cli.js", () => {
    const manifest = JSON.parse(readFileSync(join(root, 'oclif.manifest.json'), 'utf8')) as {
      commands: Record<string, {relativePath: string[]}>
    }
    const ids = Object.keys(manifest.commands)
    expect(ids).to.include.members(['help', 'model:pull', 'serve', 'deploy', 'render'])
    for (const id of ids) expect(files, id).to.include(join(...manifest.commands[id].relativePath.slice(1)))
    expect(readFileSync(join(root, 'bin', 'run.js'), 'utf8')).to.match(/import\('\.\.\/dist\/cli\.js'\)/)
  })

  it("the loader's files alone run it (package.json, the manifest, bin/run.js, dist/; no node_modules): help, a pull, an mlops.yaml with a name too long, and a bad ref's one-line error", async () => {
    const app = tempDir('mlops-loader-app-')
    for (const name of ['package.json', 'oclif.manifest.json', 'bin/run.js', 'dist'])
      cpSync(join(root, name), join(app, name), {recursive: true})
    const store = join(tempDir('mlops-store-'), 'store')
    const pushed = await runCli(['model', 'push', fixture('iris_svc.onnx'), '--name', 'iris', '--store', store])
    expect(pushed.code, pushed.stderr).to.equal(0)

    const run = (args: string[]) => spawnSync(process.execPath, [join(app, 'bin', 'run.js'), ...args], {cwd: tempDir(), encoding: 'utf8'})
    expect(run(['--version']).stdout).to.match(/^mlops\/\d+\.\d+\.\d+ /)
    const help = run(['help', 'model', 'pull'])
    expect(help.status, help.stderr).to.equal(0)
    expect(help.stdout).to.include('USAGE')

    const to = join(tempDir(), 'model.onnx')
    const pulled = run(['model', 'pull', 'iris@1', '--store', store, '--to', to])
    expect(pulled.status, pulled.stderr).to.equal(0)
    expect(pulled.stderr).to.not.match(/node_modules|Cannot find/)
    expect(readFileSync(to)).to.deep.equal(readFileSync(fixture('iris_svc.onnx')))

    // In a project: mlops.yaml validated by the build's standalone validator (its maxLength check needs ajv's ucs2length).
    const project = tempDir('mlops-project-')
    writeFileSync(join(project, 'mlops.yaml'), `name: ${'x'.repeat(300)}\n`)
    const invalid = spawnSync(process.execPath, [join(app, 'bin', 'run.js'), 'model', 'pull', 'iris@1', '--store', store, '--to', to], {
      cwd: project,
      encoding: 'utf8',
    })
    expect(invalid.status, invalid.stderr).to.equal(2)
    expect(invalid.stderr).to.match(/^Error: .*mlops\.yaml.*name/)

    const bad = run(['model', 'pull', 'gs://bucket/iris', '--store', store, '--to', to])
    expect(bad.status).to.equal(2)
    expect(bad.stderr.trim().split('\n')[0]).to.match(/^Error: a model ref is NAME@VERSION/)
  })

  it('mlops help for an unknown command: the usage error (exit 2) with a suggestion, not oclif\'s "Command not found"', async () => {
    const run = await runCli(['help', 'modle', 'pull'])
    expect(run.code).to.equal(2)
    expect(run.stderr).to.equal('Error: mlops has no command "modle"\nHint: did you mean "mlops model"? mlops --help lists the commands\n')
  })
})
