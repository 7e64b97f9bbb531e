import {runCommand} from '@oclif/test'
import {expect} from 'chai'
import Docker from 'dockerode'
import {existsSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {RUNTIME_LABELS, checkCompatibility, runtimeLabels, supportFromLabels} from '../../src/images/compat.js'
import {encodeLenField, encodeVarintField} from '../../src/onnx/wire.js'
import {SAVED_SUPPORT, installedRuntimePackage, installedRuntimeSupport, probeRuntimeSupport} from '../../src/onnx/runtime-support.js'
import {inspectModelFile} from '../../src/store/model-file.js'
import {dockerEngine} from '../env/docker.js'
import {labelledImage as labelledImageIn} from '../helpers/docker.js'
import {expected, fixture, makeStore, tempDir} from '../helpers/stores.js'
import {rejection} from '../helpers/assert.js'
import {runCli} from '../helpers/cli.js'
import {restoreEnv} from '../helpers/env.js'

const root = join(import.meta.dirname, '..', '..')
const runtime = {runtime: '1.30.0', irVersion: 13, opsets: {'ai.onnx': 26, 'ai.onnx.ml': 5}}

/** An Identity model stamped with the given IR version and opsets (valid protobuf, whatever the numbers). */
function stampedModel(path: string, irVersion: number, opsets: Record<string, number>): string {
  const valueInfo = (name: string) =>
    Buffer.concat([encodeLenField(1, name), encodeLenField(2, encodeLenField(1, encodeVarintField(1, 1)))])
  const graph = Buffer.concat([
    encodeLenField(1, Buffer.concat([encodeLenField(1, 'x'), encodeLenField(2, 'y'), encodeLenField(4, 'Identity')])),
    encodeLenField(11, valueInfo('x')),
    encodeLenField(12, valueInfo('y')),
  ])
  const imports = Object.entries(opsets).map(([domain, version]) =>
    encodeLenField(8, Buffer.concat([encodeLenField(1, domain), encodeVarintField(2, version)])),
  )
  writeFileSync(path, Buffer.concat([encodeVarintField(1, irVersion), ...imports, encodeLenField(7, graph)]))
  return path
}

describe('compatibility guard', () => {
  it('the build saved the probe of this runtime (dist/onnx/support.json): equal to probing it now', async () => {
    const saved = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'dist', 'onnx', 'support.json'), 'utf8'))
    expect(saved.package)
      .to.equal(installedRuntimePackage())
      .and.to.match(/^\d+\.\d+\.\d+/)
    expect(saved.support).to.deep.equal(await probeRuntimeSupport())
  })

  it("a saved probe is used only for the same onnxruntime-node version; another version's answer is probed again", async () => {
    // The build's own file (dist/onnx/support.json): put back as it was afterwards.
    const path = SAVED_SUPPORT
    const original = existsSync(path) ? readFileSync(path) : undefined
    const marker = {runtime: 'saved', irVersion: 99, opsets: {'ai.onnx': 99}}
    try {
      writeFileSync(path, JSON.stringify({package: installedRuntimePackage(), support: marker}))
      expect(await installedRuntimeSupport()).to.deep.equal(marker)
      writeFileSync(path, JSON.stringify({package: '0.0.1', support: marker}))
      expect(await installedRuntimeSupport()).to.deep.equal(await probeRuntimeSupport())
      writeFileSync(path, '{not json')
      expect((await installedRuntimeSupport()).runtime).to.not.equal('saved')
    } finally {
      if (original === undefined) rmSync(path, {force: true})
      else writeFileSync(path, original)
    }
  })

  it('the installed ONNX Runtime reports its own limits, and they are real limits: one opset or IR version more is refused for that reason; mlops serve exits 8 on it', async function () {
    const support = await probeRuntimeSupport()
    expect(support.irVersion).to.be.at.least(8)
    expect(support.opsets['ai.onnx']).to.be.at.least(15)
    expect(support.opsets['ai.onnx.ml']).to.be.at.least(1)
    const ort = await import('onnxruntime-node')
    const dir = tempDir()
    const load = async (path: string) => ort.InferenceSession.create(path, {logSeverityLevel: 4})
    /** Why onnxruntime refuses the model; fails the test if it loads. */
    const refusal = async (path: string) => (await rejection(load(path))).message
    const opset = support.opsets['ai.onnx']
    await (await load(stampedModel(join(dir, 'max.onnx'), support.irVersion, {'': opset}))).release()
    // Refused because of the limit, not for any other reason (a model the test wrote wrongly would be refused too).
    const overOpset = stampedModel(join(dir, 'over-opset.onnx'), support.irVersion, {'': opset + 1})
    expect(await refusal(overOpset)).to.match(
      new RegExp(`Opset ${opset + 1} is under development.*Current official support for domain ai\\.onnx is till opset ${opset}\\.`, 's'),
    )
    const overIr = stampedModel(join(dir, 'over-ir.onnx'), support.irVersion + 1, {'': opset})
    expect(await refusal(overIr)).to.match(
      new RegExp(`Unsupported model IR version: ${support.irVersion + 1}, max supported IR version: ${support.irVersion}$`, 'm'),
    )
    // The server refuses it the same way, with the documented exit code for an incompatible model.
    const serve = await runCli(['serve', '--model', overOpset, '--port', '0', '--host', '127.0.0.1', '--log-format', 'text'])
    expect(serve.code, serve.stderr).to.equal(ExitCode.INCOMPATIBLE)
    expect(serve.stderr).to.match(
      new RegExp(
        `^Error: onnxruntime ${support.runtime.replaceAll('.', '\\.')} cannot load ${overOpset.replaceAll('.', '\\.')}: .*Current official support for domain ai\\.onnx is till opset ${opset}\\.$`,
        'm',
      ),
    )
    expect(serve.stderr).to.match(new RegExp(`^Hint: the model declares IR ${support.irVersion}, opsets ai\\.onnx ${opset + 1}; `, 'm'))
  })

  for (const file of Object.keys(expected.models)) {
    it(`${file} is compatible with the runtime`, async () => {
      const model = await inspectModelFile(fixture(file))
      expect(checkCompatibility({name: 'm', version: '1', onnx: model.onnx}, runtime)).to.deep.equal({compatible: true, reasons: []})
    })
  }

  it('a higher opset than the image supports is incompatible, naming both versions', () => {
    const result = checkCompatibility(
      {
        name: 'iris',
        version: '4',
        onnx: {
          irVersion: 8,
          opsetImports: [
            {domain: 'ai.onnx', version: 27},
            {domain: 'ai.onnx.ml', version: 6},
          ],
        } as never,
      },
      runtime,
      'api:1 (onnxruntime 1.30.0)',
    )
    expect(result.compatible).to.equal(false)
    expect(result.reasons).to.deep.equal([
      'iris@4 needs opset 27 of ai.onnx; api:1 (onnxruntime 1.30.0) supports up to opset 26',
      'iris@4 needs opset 6 of ai.onnx.ml; api:1 (onnxruntime 1.30.0) supports up to opset 5',
    ])
  })

  it('a newer IR version and an unknown operator domain are incompatible; contrib domains are not', () => {
    const result = checkCompatibility(
      {
        name: 'm',
        version: '1',
        onnx: {
          irVersion: 14,
          opsetImports: [
            {domain: 'ai.onnx', version: 13},
            {domain: 'com.example.custom', version: 1},
            {domain: 'com.microsoft', version: 1},
          ],
        } as never,
      },
      runtime,
    )
    expect(result.reasons).to.deep.equal([
      'm@1 is ONNX IR version 14; onnxruntime 1.30.0 loads IR versions up to 13',
      'm@1 uses operator domain com.example.custom (opset 1), which onnxruntime 1.30.0 does not provide',
    ])
  })

  it('labels round-trip; an image without them says so', () => {
    expect(supportFromLabels(runtimeLabels(runtime))).to.deep.equal(runtime)
    expect(supportFromLabels({'org.opencontainers.image.title': 'x'})).to.equal(undefined)
  })

  it('mlops image check: fixture passes (exit 0); a model stamped with opset 27 → exit 8 naming both versions', async () => {
    const s = await makeStore('local')
    const dir = tempDir()
    await s.store.push({model: await inspectModelFile(fixture('iris_svc.onnx')), name: 'iris', metadata: {}, workDir: dir})
    await s.store.push({
      model: await inspectModelFile(stampedModel(join(dir, 'future.onnx'), 8, {'': 27})),
      name: 'future',
      metadata: {},
      workDir: dir,
    })
    const ok = await runCommand(['image', 'check', '--model', 'iris@1', '--store', s.uri, '--json'], {root})
    expect(JSON.parse(ok.stdout)).to.include({model: 'iris@1', compatible: true})
    const bad = await runCommand(['image', 'check', '--model', 'future', '--store', s.uri], {root})
    expect((bad.error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.INCOMPATIBLE)
    expect(bad.stderr).to.match(/^Error: future@1 needs opset 27 of ai\.onnx; onnxruntime \d+\.\d+\.\d+ supports up to opset \d+\n/)
  })
})

describe('compatibility guard against an image in a real Docker engine', () => {
  let docker: Docker

  before(function () {
    this.timeout(10 * 60 * 1000)
    process.env.DOCKER_HOST = dockerEngine().dockerHost
    docker = new Docker()
  })

  const labelledImage = async (tag: string, labels: Record<string, string>) => labelledImageIn(docker, tag, labels)

  it('--image reads the labels first: older runtime → 8 (recorded), unlabelled → 8, missing image → 3; labels that fit run the image (nothing to run → 8)', async () => {
    const s = await makeStore('local')
    await s.store.push({model: await inspectModelFile(fixture('iris_logreg.onnx')), name: 'iris', metadata: {}, workDir: tempDir()})
    await labelledImage('mlops-test/api:new', runtimeLabels(runtime))
    await labelledImage('mlops-test/api:old', {...runtimeLabels(runtime), [RUNTIME_LABELS.opsets]: 'ai.onnx=12,ai.onnx.ml=1'})
    await labelledImage('mlops-test/plain:1', {'org.opencontainers.image.title': 'plain'})
    const check = async (image: string) => runCommand(['image', 'check', '--model', 'iris@1', '--image', image, '--store', s.uri], {root})
    const empty = await check('mlops-test/api:new')
    expect((empty.error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.INCOMPATIBLE)
    expect(empty.stderr).to.match(/^Error: image mlops-test\/api:new cannot run the check: /)
    const old = await check('mlops-test/api:old')
    expect((old.error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.INCOMPATIBLE)
    expect(old.stderr).to.contain(
      'Error: iris@1 needs opset 15 of ai.onnx; mlops-test/api:old (onnxruntime 1.30.0) supports up to opset 12',
    )
    const verified = JSON.parse((await runCommand(['model', 'show', 'iris@1', '--store', s.uri, '--json'], {root})).stdout).verified
    expect(verified.map((v: {image: string; ok: boolean}) => [v.image, v.ok])).to.deep.equal([['mlops-test/api:old', false]])
    const plain = await check('mlops-test/plain:1')
    expect((plain.error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.INCOMPATIBLE)
    expect(plain.stderr).to.contain('no io.mlops.* labels')
    const none = await check('mlops-test/none:1')
    expect((none.error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.NOT_FOUND)
    expect(none.stderr).to.match(/^Error: image mlops-test\/none:1 is not in the Docker engine at /)
  })

  it('daemon unreachable → exit 7 naming DOCKER_HOST', async () => {
    const saved = process.env.DOCKER_HOST
    process.env.DOCKER_HOST = 'unix:///tmp/mlops-no-such-docker.sock'
    try {
      const s = await makeStore('local')
      await s.store.push({model: await inspectModelFile(fixture('iris_svc.onnx')), name: 'iris', metadata: {}, workDir: tempDir()})
      const {error, stderr} = await runCommand(['image', 'check', '--model', 'iris@1', '--image', 'x:1', '--store', s.uri], {root})
      expect((error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.UNAVAILABLE)
      expect(stderr).to.contain('Error: cannot reach the Docker engine at unix:///tmp/mlops-no-such-docker.sock')
    } finally {
      restoreEnv('DOCKER_HOST', saved)
    }
  })
})
