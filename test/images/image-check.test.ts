import {expect} from 'chai'
import Docker from 'dockerode'
import {copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {dockerEngine} from '../env/docker.js'
import {waitFor} from '../env/ports.js'
import {runCli, startCli} from '../helpers/cli.js'
import {dockerfileImage, labelledImage} from '../helpers/docker.js'
import {seedDrift} from '../helpers/drift.js'
import {writeSlowLoadingOnnx} from '../helpers/onnx-writer.js'
import {fixture, tempDir} from '../helpers/stores.js'

const API = 'mlops-test/api:test'

describe('image check on the Docker engine: the API image answers the reference set; the results make the matrix', function () {
  this.timeout(10 * 60 * 1000)
  let project: string
  let docker: Docker
  let env: Record<string, string>
  const cli = (...args: string[]) => runCli(args, env, project)
  const check = (...args: string[]) => cli('image', 'check', '--image', API, ...args)
  const storeFile = (...path: string[]) => join(project, '.mlops', 'store', 'iris', ...path)
  const checkContainers = async () => docker.listContainers({all: true, filters: {label: ['io.mlops.role=check']}})

  before(async () => {
    env = {DOCKER_HOST: dockerEngine().dockerHost}
    process.env.DOCKER_HOST = env.DOCKER_HOST
    docker = new Docker()
    project = tempDir()
    writeFileSync(
      join(project, 'mlops.yaml'),
      'name: iris\nmodel:\n  name: iris\nimage:\n  repository: mlops-test\n  tag: test\ndeploy:\n  target: docker\n',
    )
    const built = await cli('image', 'build', 'all')
    expect(built.code, built.stderr).to.equal(0)
    const push = await cli(
      'model',
      'push',
      fixture('iris_svc.onnx'),
      '--labels',
      fixture('iris_labels.json'),
      '--reference',
      fixture('iris_reference.csv'),
    )
    expect(push.code, push.stderr).to.equal(0)
    expect((await cli('model', 'push', fixture('iris_rf.onnx'), '--labels', fixture('iris_labels.json'))).code).to.equal(0)
  })

  after(async () => {
    await cli('delete', '--yes')
  })

  it("--image: the API image's own serve --check answers iris@1's 1,000 reference rows as recorded (exit 0); recorded; model show and --matrix list it", async () => {
    const run = await check('--model', 'iris@1', '--json')
    expect(run.code, run.stderr).to.equal(0)
    const result = JSON.parse(run.stdout)
    expect(result).to.include({model: 'iris@1', image: API, compatible: true, recorded: true, servedBy: 'onnxruntime-node 1.30.0'})
    expect(result.imageId).to.match(/^sha256:[0-9a-f]{64}$/)
    expect(result.parity).to.deep.include({rows: 1000, maxDelta: 0, drifted: [], recordedBy: 'onnxruntime-node 1.30.0', tolerance: 0.0001})
    const text = await check('--model', 'iris@1')
    expect(text.stdout.split('\n')).to.satisfy((lines: string[]) =>
      [
        /^iris@1 \(IR \d+, .*\) runs on mlops-test\/api:test \(onnxruntime 1\.30\.0\) \(IR ≤ \d+, .*\)$/,
        /^onnxruntime-node 1\.30\.0 answers its reference set as onnxruntime-node 1\.30\.0 recorded it: 1000 rows, max \|Δ\| 0 ≤ 0\.0001$/,
        /^recorded in the store: iris@1 verified on mlops-test\/api:test \([0-9a-f]{12}\)$/,
        /^$/,
      ].every((pattern, index) => pattern.test(lines[index])),
    )
    const show = JSON.parse((await cli('model', 'show', 'iris@1', '--json')).stdout)
    expect(show.verified).to.have.length(1)
    expect(show.verified[0]).to.deep.include({image: API, imageId: result.imageId, ok: true, runtime: 'onnxruntime-node 1.30.0'})
    expect(show.verified[0].parity).to.include({rows: 1000, maxDelta: 0})
    expect((await cli('model', 'show', 'iris@1')).stdout).to.match(
      /^ {2}verified {3}mlops-test\/api:test \([0-9a-f]{12}, onnxruntime-node 1\.30\.0\) ✔ answers its reference set \(1000 rows\), checked /m,
    )
    // No container and no model copy are left.
    expect(await checkContainers()).to.deep.equal([])
  })

  it('a version without a reference set: the image loads it and warms up (✔ loads); the matrix has a row per version, a column per image', async () => {
    const run = await check('--model', 'iris@2', '--json')
    expect(run.code, run.stderr).to.equal(0)
    expect(JSON.parse(run.stdout)).to.include({model: 'iris@2', parity: null, recorded: true})
    const matrix = await cli('image', 'check', '--matrix')
    expect(matrix.code, matrix.stderr).to.equal(0)
    expect(matrix.stdout).to.match(
      /^ +IMAGE +ID +RUNTIME\n\[1\] +mlops-test\/api:test +[0-9a-f]{12} +onnxruntime-node 1\.30\.0\n\nVERSION +\[1\]\niris@1 +✔ 1000 rows\niris@2 +✔ loads\n$/,
    )
    const json = JSON.parse((await cli('image', 'check', '--matrix', '--model', 'iris', '--json')).stdout)
    expect(json).to.include({matrix: true})
    expect(json.images).to.have.length(1)
    expect(json.cells.map((c: {version: string; ok: boolean}) => [c.version, c.ok])).to.deep.equal([
      ['1', true],
      ['2', true],
    ])
  })

  it('a seeded drift (7 rows recorded by onnxruntime-node 1.14.0) → image check exit 8 naming both runtimes, recorded ✘; deploy --target docker exit 8 alike; put right, ✔', async () => {
    const reference = storeFile('1', 'reference.json')
    const original = readFileSync(reference)
    seedDrift(reference, reference, 7)
    try {
      const run = await check('--model', 'iris@1')
      expect(run.code).to.equal(ExitCode.INCOMPATIBLE)
      expect(run.stderr).to.match(
        new RegExp(
          String.raw`^Error: iris@1 answers its reference set differently: 7 of 1000 rows differ beyond 0\.0001 \(rows 1, 2, 3, 4, 5, \.\.\.; max \|Δ\| 0\.0100\); ` +
            String.raw`recorded by onnxruntime-node 1\.14\.0, serving onnxruntime-node 1\.30\.0\n`,
        ),
      )
      const show = JSON.parse((await cli('model', 'show', 'iris@1', '--json')).stdout)
      expect(show.verified[0]).to.include({ok: false})
      expect(show.verified[0].reason).to.contain('recorded by onnxruntime-node 1.14.0, serving onnxruntime-node 1.30.0')
      const matrix = (await cli('image', 'check', '--matrix')).stdout
      expect(matrix).to.match(/^iris@1 +✘$/m)
      expect(matrix).to.match(/^✘ iris@1 on \[1\]: iris@1 answers its reference set differently: 7 of 1000 rows/m)
      // The deploy: the loader gives the API container the same reference set; serve refuses it.
      const deploy = await cli('deploy', '--model', 'iris@1')
      expect(deploy.code).to.equal(ExitCode.INCOMPATIBLE)
      expect(deploy.stderr).to.contain('mlops serve refused the model: iris@1 answers its reference set differently: 7 of 1000 rows')
      expect(deploy.stderr).to.contain('recorded by onnxruntime-node 1.14.0, serving onnxruntime-node 1.30.0')
      expect((await cli('status', '--json')).code).to.equal(ExitCode.NOT_FOUND)
    } finally {
      writeFileSync(reference, original)
    }

    expect((await check('--model', 'iris@1')).code).to.equal(0)
    const show = JSON.parse((await cli('model', 'show', 'iris@1', '--json')).stdout)
    expect(show.verified.map((v: {ok: boolean}) => v.ok)).to.deep.equal([true])
  })

  it('bad inputs: an image answering a forged result, one that cannot run the check → 8; --reference-tolerance abc, --matrix with --image or NAME@REF, no --model → 2', async () => {
    const before = readFileSync(storeFile('1', 'verified.json'), 'utf8')
    const sha256 = JSON.parse(readFileSync(storeFile('1', 'manifest.json'), 'utf8')).sha256 as string
    // Hostile: says it answered every row, for another model file; then for this one with rows drifted yet exit 0.
    const forged = async (tag: string, answer: object) => {
      const script = `process.stdout.write(${JSON.stringify(JSON.stringify(answer))})`
      await dockerfileImage(docker, tag, `FROM ${API}\nENTRYPOINT ["node", "-e", ${JSON.stringify(script)}, "--"]\n`)
      return cli('image', 'check', '--model', 'iris@1', '--image', tag)
    }

    const parity = {
      rows: 1000,
      recordedBy: 'onnxruntime-node 1.30.0',
      servedBy: 'onnxruntime-node 1.30.0',
      tolerance: 0.0001,
      maxDelta: 0,
      unmatched: [],
    }
    const other = await forged('mlops-test/forged:1', {
      stoppedBy: 'check',
      sha256: '0'.repeat(64),
      runtime: 'onnxruntime-node 1.30.0',
      parity: {...parity, drifted: []},
    })
    expect(other.code).to.equal(ExitCode.INCOMPATIBLE)
    expect(other.stderr).to.match(
      /^Error: image mlops-test\/forged:1 answered the check with something that is not a check result: it names another model file/m,
    )
    const drifted = await forged('mlops-test/forged:2', {
      stoppedBy: 'check',
      sha256,
      runtime: 'onnxruntime-node 1.30.0',
      parity: {...parity, drifted: [3]},
    })
    expect(drifted.code).to.equal(ExitCode.INCOMPATIBLE)
    expect(drifted.stderr).to.contain('parity.drifted is not an empty list, yet it exited 0')
    const garbage = await forged('mlops-test/forged:3', {stoppedBy: 'check', sha256, runtime: 'onnxruntime-node 1.30.0\u001b[2J'})
    expect(garbage.stderr).to.contain('runtime is not "onnxruntime-node X.Y.Z"')
    // Labelled as an API image, but nothing in it runs.
    await labelledImage(docker, 'mlops-test/empty:1', (await docker.getImage(API).inspect()).Config.Labels ?? {})
    const empty = await cli('image', 'check', '--model', 'iris@1', '--image', 'mlops-test/empty:1')
    expect(empty.code).to.equal(ExitCode.INCOMPATIBLE)
    expect(empty.stderr).to.match(/^Error: image mlops-test\/empty:1 cannot run the check: /)
    // None of them was recorded, and no container is left.
    expect(readFileSync(storeFile('1', 'verified.json'), 'utf8')).to.equal(before)
    expect(await checkContainers()).to.deep.equal([])

    const usage = [
      [['--model', 'iris@1', '--reference-tolerance', 'abc'], /^Error: --reference-tolerance "abc" is not a number of 0 or more/],
      [['--matrix'], /^Error: --matrix prints what was recorded; it checks no image/],
    ] as const
    for (const [args, message] of usage) {
      const run = await check(...args)
      expect(run.code, args.join(' ')).to.equal(ExitCode.USAGE)
      expect(run.stderr).to.match(message)
    }

    const named = await cli('image', 'check', '--matrix', '--model', 'iris@1')
    expect(named.code).to.equal(ExitCode.USAGE)
    expect(named.stderr).to.match(/^Error: --matrix takes a model name, not "iris@1"\nHint: --model iris/)
    const none = await cli('image', 'check')
    expect(none.code).to.equal(ExitCode.USAGE)
    expect(none.stderr).to.match(/^Error: image check needs --model NAME@REF, or --matrix/)
  })

  it('a corrupt verified.json: model show and --matrix report it and go on; the next check writes a good record', async () => {
    const record = storeFile('2', 'verified.json')
    writeFileSync(record, '{"verified": [{"image": "x\\nEvil", "imageId": "sha256:1"}]}')
    const show = await cli('model', 'show', 'iris@2', '--json')
    expect(show.code, show.stderr).to.equal(0)
    expect(JSON.parse(show.stdout).verifiedProblem).to.match(
      /the record of the images it was verified on in .* is corrupt: verified\[0\]\.image is not an image reference/,
    )
    const matrix = await cli('image', 'check', '--matrix')
    expect(matrix.code).to.equal(0)
    expect(matrix.stdout).to.match(/^iris@2 +\?$/m)
    expect((await check('--model', 'iris@2')).code).to.equal(0)
    expect(JSON.parse(readFileSync(record, 'utf8')).verified).to.have.length(1)
  })

  it("Ctrl-C while the image loads a slow model → exit 130, its container and model copy removed; a killed run's leftovers go at the next check", async () => {
    writeSlowLoadingOnnx(join(project, 'slow.onnx'), 200_000)
    expect((await cli('model', 'push', join(project, 'slow.onnx'), '--name', 'slow')).code).to.equal(0)
    const started = startCli(['image', 'check', '--model', 'slow@1', '--image', API], env, project)
    await waitFor(async () => (await checkContainers()).some(c => c.State === 'running'), 'the check container', 120_000)
    started.child.kill('SIGINT')
    const run = await started.done
    expect(run.code).to.equal(ExitCode.INTERRUPTED)
    expect(run.stderr).to.match(
      /^Error: mlops image check interrupted \(SIGINT\): its container and files were removed; nothing was recorded/m,
    )
    expect(await checkContainers()).to.deep.equal([])
    expect(existsSync(join(project, '.mlops', 'store', 'slow', '1', 'verified.json'))).to.equal(false)

    // What a kill -9 leaves: a check container and a model copy of a process that is gone.
    const gone = 2 ** 22 + 12_345
    const leftover = join(tmpdir(), `mlops-check-${gone}-abc`)
    mkdirSync(leftover)
    copyFileSync(fixture('iris_svc.onnx'), join(leftover, 'model.onnx'))
    const {hostname} = await import('node:os')
    const container = await docker.createContainer({
      Image: API,
      Labels: {'io.mlops.role': 'check', 'io.mlops.check.pid': String(gone), 'io.mlops.check.host': hostname().slice(0, 63)},
      HostConfig: {NetworkMode: 'none'},
    })
    expect((await check('--model', 'iris@2')).code).to.equal(0)
    expect(existsSync(leftover)).to.equal(false)
    expect(await checkContainers()).to.deep.equal([])
    await container.remove({force: true}).catch(() => {})
  })
})
