import {runCommand} from '@oclif/test'
import {expect} from 'chai'
import {spawn} from 'node:child_process'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {parse} from 'yaml'

import Docker from 'dockerode'

import {ExitCode} from '../../src/errors.js'
import {dockerEngine} from '../env/docker.js'
import {listFiles, makeStore, tempDir} from '../helpers/stores.js'

const root = join(import.meta.dirname, '..', '..')
const bin = join(root, 'bin', 'run.js')

async function init(...args: string[]) {
  const result = await runCommand(['init', ...args], {root})
  return {...result, exitCode: (result.error as {oclif?: {exit?: number}} | undefined)?.oclif?.exit ?? 0}
}

describe('mlops init', function () {
  this.timeout(120_000)

  it('non-interactive with flags and --yes: writes mlops.yaml, README, .gitignore and the sample model', async () => {
    const dir = join(tempDir(), 'Iris_Service')
    const {exitCode, stdout, stderr} = await init(dir, '--yes', '--store', 'gs://models/iris', '--replicas', '3')
    expect(exitCode, stderr).to.equal(0)
    expect(listFiles(dir)).to.deep.equal([
      '.gitignore',
      'README.md',
      'docker/api.Dockerfile',
      'docker/loader.Dockerfile',
      'mlops.yaml',
      'model/labels.json',
      'model/model.onnx',
      'model/reference.csv',
    ])
    const config = parse(readFileSync(join(dir, 'mlops.yaml'), 'utf8'))
    expect(config).to.deep.include({
      name: 'iris-service',
      model: {name: 'iris-service'},
      store: 'gs://models/iris',
      image: {repository: 'mlops/iris-service'},
    })
    expect(config.deploy).to.include({namespace: 'iris-service', replicas: 3})
    expect(config.deploy, 'all-at-once, the default, is not written').to.not.have.property('strategy')
    expect(stdout).to.contain('Wrote 8 files')
  })

  it('--strategy shadow writes deploy.strategy (a plain deploy then runs the shadow); --strategy bogus → exit 2, nothing written', async () => {
    const dir = join(tempDir(), 'svc')
    expect((await init(dir, '--yes', '--strategy', 'shadow')).exitCode).to.equal(0)
    expect(parse(readFileSync(join(dir, 'mlops.yaml'), 'utf8')).deploy).to.include({strategy: 'shadow'})
    const other = join(tempDir(), 'svc')
    const bogus = await init(other, '--yes', '--strategy', 'bogus')
    expect(bogus.exitCode).to.equal(ExitCode.USAGE)
    expect(bogus.stderr).to.match(/Expected --strategy=bogus to be one of: all-at-once, canary, shadow/)
    expect(existsSync(other)).to.equal(false)
  })

  it('--manifests copies the templates; --no-sample-model leaves the model out', async () => {
    const dir = tempDir()
    const {exitCode} = await init(dir, '--yes', '--name', 'svc', '--manifests', '--no-sample-model')
    expect(exitCode).to.equal(0)
    expect(listFiles(dir)).to.include.members(['manifests/deployment.yaml', 'manifests/service.yaml'])
    expect(existsSync(join(dir, 'model'))).to.equal(false)
  })

  it('without a terminal and without --yes: a missing setting → exit 2 naming the flag, nothing written', async () => {
    const dir = tempDir()
    const {exitCode, stderr} = await init(dir, '--name', 'svc')
    expect(exitCode).to.equal(ExitCode.USAGE)
    expect(stderr).to.match(/^Error: missing --model-name: there is no terminal to ask/)
    expect(listFiles(dir)).to.deep.equal([])
  })

  it('existing files → exit 4 listing them, nothing written; --force overwrites', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'mlops.yaml'), 'name: old\n')
    const refused = await init(dir, '--yes')
    expect(refused.exitCode).to.equal(ExitCode.CONFLICT)
    expect(refused.stderr).to.match(/already has mlops\.yaml; nothing was written/)
    expect(listFiles(dir)).to.deep.equal(['mlops.yaml'])
    expect((await init(dir, '--yes', '--force')).exitCode).to.equal(0)
    expect(readFileSync(join(dir, 'mlops.yaml'), 'utf8')).to.not.contain('name: old')
  })

  it('invalid values → exit 2', async () => {
    expect((await init(tempDir(), '--yes', '--name', 'Bad_Name')).stderr).to.match(/invalid --name "Bad_Name"/)
    expect((await init(tempDir(), '--yes', '--model-name', '../x')).exitCode).to.equal(ExitCode.USAGE)
  })

  for (const [what, args, message] of [
    [
      '--store s3://bucket/x (a store no command can open)',
      ['--store', 's3://bucket/x'],
      /^Error: store: string "s3:\/\/bucket\/x" is not gs:\/\/BUCKET\[\/PREFIX\], file:\/\/\/absolute\/path or a folder; nothing was written$/m,
    ],
    [
      '--memory lots',
      ['--memory', 'lots'],
      /^Error: deploy\.resources\.requests\.memory: string "lots" is not a Kubernetes quantity such as 500m, 2 or 1Gi; nothing was written$/m,
    ],
    ['--cpu 2x', ['--cpu', '2x'], /deploy\.resources\.requests\.cpu: string "2x" is not a Kubernetes quantity/],
    [
      '--image-repository UPPER/Case',
      ['--image-repository', 'UPPER/Case'],
      /image\.repository: string "UPPER\/Case" is not an image repository in lower case/,
    ],
  ] as const) {
    it(`bad input: ${what} → exit 2, nothing written (every later command would reject it)`, async () => {
      const dir = tempDir()
      const {exitCode, stderr} = await init(dir, '--yes', ...args)
      expect(exitCode).to.equal(ExitCode.USAGE)
      expect(stderr).to.match(message)
      expect(listFiles(dir)).to.deep.equal([])
    })
  }

  it('interactively: answers the prompts on a terminal (a pseudo-terminal here)', async () => {
    const dir = join(tempDir(), 'interactive')
    // util-linux script(1) gives the CLI a pseudo-terminal; answers are typed when each prompt shows.
    const child = spawn('script', ['-qfec', `${process.execPath} ${bin} init ${dir}`, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {...process.env, CI: ''},
    })
    let screen = ''
    const answers: Array<[RegExp, string]> = [
      [/Project name/, 'fraud\r'],
      [/Model name/, 'fraud-gbm\r'],
      [/Model store/, 'gs://fraud-models\r'],
      [/Image repository/, '\r'],
      [/Kubernetes namespace/, 'risk\r'],
      [/Replicas/, '\r'],
      [/CPU request/, '\r'],
      [/Memory per pod/, '1Gi\r'],
      // A select list (all-at-once, canary, shadow) on all-at-once: one down is canary.
      [/Release strategy/, '\u001B[B\r'],
      [/sample iris model/, 'n\r'],
      [/manifest templates/, '\r'],
      // A select list (github, gitlab, cloudbuild, none) on none: one up is cloudbuild.
      [/Release workflow for CI/, '\u001B[A\r'],
    ]
    let step = 0
    const done = new Promise<number | null>(resolve => {
      child.once('exit', code => resolve(code))
    })
    child.stdout.on('data', chunk => {
      screen += chunk.toString()
      while (step < answers.length && answers[step][0].test(screen)) {
        screen = ''
        child.stdin.write(answers[step][1])
        step++
      }
    })
    expect(await done).to.equal(0)
    expect(step).to.equal(answers.length)
    const config = parse(readFileSync(join(dir, 'mlops.yaml'), 'utf8'))
    expect(config).to.deep.include({name: 'fraud', model: {name: 'fraud-gbm'}, store: 'gs://fraud-models'})
    expect(config.deploy).to.include({namespace: 'risk', strategy: 'canary'})
    expect(config.deploy.resources.requests.memory).to.equal('1Gi')
    expect(existsSync(join(dir, 'model'))).to.equal(false)
    expect(readFileSync(join(dir, 'cloudbuild.yaml'), 'utf8')).to.contain('_MLOPS_STORE: gs://fraud-models')
  })

  it('the scaffolded project works without edits: push the sample model, render the manifests', async () => {
    const store = await makeStore('gcs')
    const dir = tempDir()
    expect((await init(dir, '--yes', '--name', 'iris', '--store', store.uri)).exitCode).to.equal(0)
    const config = join(dir, 'mlops.yaml')
    process.env.MLOPS_GCS_ENDPOINT = store.env.MLOPS_GCS_ENDPOINT
    try {
      const pushed = await runCommand(
        [
          'model',
          'push',
          join(dir, 'model', 'model.onnx'),
          '--labels',
          join(dir, 'model', 'labels.json'),
          '--reference',
          join(dir, 'model', 'reference.csv'),
          '--config',
          config,
          '--json',
        ],
        {root},
      )
      expect(pushed.error, pushed.stderr).to.equal(undefined)
      // The sample's reference set goes with it: 1,000 rows, run by the installed onnxruntime.
      expect(JSON.parse(pushed.stdout).reference).to.include({rows: 1000})
      const rendered = await runCommand(['render', '--config', config, '--json'], {root})
      expect(rendered.error, rendered.stderr).to.equal(undefined)
      expect(JSON.parse(rendered.stdout)).to.include({model: 'iris@1'})
    } finally {
      delete process.env.MLOPS_GCS_ENDPOINT
    }
  })
})

describe("mlops init, then mlops image build with the project's own Dockerfile", function () {
  this.timeout(10 * 60 * 1000)

  it('the scaffolded docker/api.Dockerfile is the one built (a label added to it is on the image)', async () => {
    process.env.DOCKER_HOST = dockerEngine().dockerHost
    const dir = tempDir()
    expect((await init(dir, '--yes', '--name', 'custom', '--image-repository', 'mlops-test/custom')).exitCode).to.equal(0)
    const dockerfile = join(dir, 'docker', 'api.Dockerfile')
    writeFileSync(dockerfile, `${readFileSync(dockerfile, 'utf8')}LABEL io.mlops.custom="from the project"\n`)
    const built = await runCommand(['image', 'build', 'api', '--tag', 'v1', '--config', join(dir, 'mlops.yaml')], {root})
    expect(built.error, built.stderr).to.equal(undefined)
    const info = await new Docker().getImage('mlops-test/custom/api:v1').inspect()
    expect(info.Config.Labels).to.include({'io.mlops.custom': 'from the project', 'io.mlops.component': 'api'})
  })
})
