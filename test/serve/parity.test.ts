import {expect} from 'chai'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {runCli} from '../helpers/cli.js'
import {seedDrift} from '../helpers/drift.js'
import {fixture, tempDir} from '../helpers/stores.js'

describe('runtime parity: serve answers the version reference set before it is ready', function () {
  this.timeout(120_000)
  let project: string
  let workdir: string
  const cli = (...args: string[]) => runCli(args, {}, project)
  const serveCheck = (...args: string[]) =>
    cli(
      'serve',
      '--model',
      join(workdir, 'model.onnx'),
      '--labels',
      join(workdir, 'labels.json'),
      '--check',
      '--log-format',
      'text',
      ...args,
    )

  before(async () => {
    project = tempDir()
    workdir = join(project, 'workdir')
    writeFileSync(join(project, 'mlops.yaml'), 'name: iris\nmodel:\n  name: iris\n')
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
    const pull = await cli('model', 'pull', 'iris@1', '--to', `${workdir}/`, '--labels-to', `${workdir}/`, '--reference-to', `${workdir}/`)
    expect(pull.code, pull.stderr).to.equal(0)
    expect(pull.stdout).to.contain(`reference set → ${join(workdir, 'reference.json')}`)
  })

  after(async () => {
    await cli('delete', '--target', 'local')
  })

  it('the loader writes the verified reference set; serve --check answers its 1,000 rows as recorded (max |Δ| 0)', async () => {
    const check = await serveCheck('--reference', join(workdir, 'reference.json'), '--json')
    expect(check.code, check.stderr).to.equal(0)
    const result = JSON.parse(check.stdout)
    expect(result).to.include({stoppedBy: 'check', runtime: 'onnxruntime-node 1.30.0'})
    expect(result.parity).to.deep.include({rows: 1000, maxDelta: 0, drifted: [], recordedBy: 'onnxruntime-node 1.30.0'})
    // Without the labels file the server answers class numbers where the record has names: the probabilities still match.
    const unlabelled = await cli('serve', '--model', join(workdir, 'model.onnx'), '--check', '--reference', join(workdir, 'reference.json'))
    expect(unlabelled.code, unlabelled.stderr).to.equal(0)
  })

  it('a seeded drift (7 rows off by 0.01, recorded by onnxruntime-node 1.14.0) → exit 8 naming both runtimes and the rows', async () => {
    seedDrift(join(workdir, 'reference.json'), join(workdir, 'drift.json'), 7)
    const check = await serveCheck('--reference', join(workdir, 'drift.json'))
    expect(check.code).to.equal(ExitCode.INCOMPATIBLE)
    expect(check.stderr).to.contain(
      'iris@1 answers its reference set differently: 7 of 1000 rows differ beyond 0.0001 (rows 1, 2, 3, 4, 5, ...; max |Δ| 0.0100); ' +
        'recorded by onnxruntime-node 1.14.0, serving onnxruntime-node 1.30.0',
    )
    // Within a tolerance that covers the drift, it is the same answer.
    expect((await serveCheck('--reference', join(workdir, 'drift.json'), '--reference-tolerance', '0.02')).code).to.equal(0)
  })

  it("bad inputs: another model's reference set → exit 5; a missing reference file → exit 3; a changed row without its digest → exit 5; --reference-tolerance -1 and abc → exit 2", async () => {
    const other = tempDir()
    const pulled = await cli('model', 'pull', 'iris@2', '--to', `${other}/`)
    expect(pulled.code).to.equal(0)
    const otherModel = await cli(
      'serve',
      '--model',
      join(other, 'model.onnx'),
      '--check',
      '--log-format',
      'text',
      '--reference',
      join(workdir, 'reference.json'),
    )
    expect(otherModel.code).to.equal(ExitCode.INTEGRITY)
    expect(otherModel.stderr).to.match(/Error: reference set .*reference\.json is not this model's: it was computed for another model file/)

    const missing = await serveCheck('--reference', join(workdir, 'nothing.json'))
    expect(missing.code).to.equal(ExitCode.NOT_FOUND)
    expect(missing.stderr).to.match(/Error: reference set .*nothing\.json does not exist/)

    const record = JSON.parse(readFileSync(join(workdir, 'reference.json'), 'utf8'))
    record.outputs[0].prediction[0] += 0.5
    writeFileSync(join(workdir, 'tampered.json'), JSON.stringify(record))
    const tampered = await serveCheck('--reference', join(workdir, 'tampered.json'))
    expect(tampered.code).to.equal(ExitCode.INTEGRITY)
    expect(tampered.stderr).to.contain('its rows have sha256')

    for (const bad of ['-1', 'abc']) {
      const run = await serveCheck('--reference', join(workdir, 'reference.json'), '--reference-tolerance', bad)
      expect(run.code, bad).to.equal(ExitCode.USAGE)
      expect(run.stderr).to.contain(`--reference-tolerance "${bad}" is not a number of 0 or more`)
    }
  })

  it('model pull --reference-to of a version without a reference set → exit 3 with a hint', async () => {
    const pull = await cli('model', 'pull', 'iris@2', '--to', `${tempDir()}/`, '--reference-to', `${tempDir()}/`)
    expect(pull.code).to.equal(ExitCode.NOT_FOUND)
    expect(pull.stderr).to.contain(
      'Error: iris@2 has no reference set\nHint: add one (mlops model reference add iris@2 FILE), or drop --reference-to',
    )
  })

  it('deploy --target local: the version with its reference set serves; a seeded drift fails the deploy with exit 8 and the previous server serves on', async () => {
    const good = await cli('deploy', '--model', 'iris@1', '--json')
    expect(good.code, good.stderr).to.equal(0)
    const url = JSON.parse(good.stdout).url as string
    // Another version, its reference set recorded at push, then a drift seeded into the store:
    // a record whose digest fits, made by another runtime.
    const push = await cli(
      'model',
      'push',
      fixture('iris_rf.onnx'),
      '--labels',
      fixture('iris_labels.json'),
      '--version',
      '3',
      '--reference',
      fixture('iris_reference.csv'),
    )
    expect(push.code, push.stderr).to.equal(0)
    const stored = join(project, '.mlops', 'store', 'iris', '3', 'reference.json')
    seedDrift(stored, stored, 3)
    const drift = await cli('deploy', '--model', 'iris@3')
    expect(drift.code).to.equal(ExitCode.INCOMPATIBLE)
    expect(drift.stderr).to.match(
      /^Error: mlops serve refused the model: iris@3 answers its reference set differently: 3 of 1000 rows .*recorded by onnxruntime-node 1\.14\.0, serving onnxruntime-node 1\.30\.0; the server that was serving still is$/m, // eslint-disable-line max-len
    )
    const status = JSON.parse((await cli('status', '--json')).stdout)
    expect(status).to.include({model: 'iris@1', url, ready: true})
  })
})
