import {expect} from 'chai'
import {type ChildProcess, spawn} from 'node:child_process'
import {request as httpRequest} from 'node:http'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {waitFor} from '../env/ports.js'
import {runCli} from '../helpers/cli.js'
import {metric} from '../helpers/metrics.js'
import {writeNegativeFailingOnnx} from '../helpers/failing-model.js'
import {writeSlowLoadingOnnx} from '../helpers/onnx-writer.js'
import {expected, fixture, tempDir} from '../helpers/stores.js'

const bin = join(import.meta.dirname, '..', '..', 'bin', 'run.js')

interface Server {
  url: string
  child: ChildProcess
  stderr: () => string
  exited: Promise<number | null>
}

const running = new Set<ChildProcess>()

// A failed assertion must not leave a server behind (it would outlive the run).
after(() => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  running.clear()
})

/**
 * A real `mlops serve` process on a free port; resolves once it listens (not necessarily ready).
 * One worker: these tests are about the server itself (serve-workers.test.ts runs several).
 */
async function serve(args: string[], env: Record<string, string> = {}): Promise<Server> {
  const child = spawn(process.execPath, [bin, 'serve', '--host', '127.0.0.1', '--port', '0', '--log-format', 'json', ...args], {
    env: {...process.env, MLOPS_WORKERS: '1', ...env},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.add(child)
  let stderr = ''
  const exited = new Promise<number | null>(resolve => {
    child.once('exit', code => resolve(code))
  })
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', chunk => {
      stderr += chunk
      // Only our JSON lines: onnxruntime may print its own warnings on stderr too.
      const listening = stderr
        .split('\n')
        .filter(line => line.startsWith('{'))
        .map(line => JSON.parse(line))
        .find(line => line.msg === 'listening')
      if (listening) resolve(listening.url)
    })
    void exited.then(code => reject(new Error(`serve exited with ${code} before listening:\n${stderr}`)))
  })
  return {url, child, stderr: () => stderr, exited}
}

async function ready(server: Server): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    if ((await fetch(`${server.url}/ready`)).status === 200) return
    await new Promise(resolve => {
      setTimeout(resolve, 25)
    })
  }

  throw new Error(`not ready:\n${server.stderr()}`)
}

async function stop(server: Server): Promise<number | null> {
  server.child.kill('SIGTERM')
  return server.exited
}

async function post(url: string, body: unknown, raw = false): Promise<{status: number; json: any}> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body: raw ? String(body) : JSON.stringify(body),
  })
  return {status: response.status, json: await response.json()}
}

function closeTo(actual: unknown, wanted: unknown, path = 'value'): void {
  if (Array.isArray(wanted)) {
    expect(actual, path).to.be.an('array').with.length(wanted.length)
    wanted.forEach((w, i) => closeTo((actual as unknown[])[i], w, `${path}[${i}]`))
  } else if (typeof wanted === 'number') {
    expect(actual, path).to.be.closeTo(wanted, 1e-4)
  } else {
    expect(actual, path).to.deep.equal(wanted)
  }
}

const CLASSIFIERS: Record<string, {probabilities: string; label?: string}> = {
  'iris_svc.onnx': {probabilities: 'output_probability', label: 'output_label'},
  'iris_rf.onnx': {probabilities: 'output_probability', label: 'output_label'},
  'iris_logreg.onnx': {probabilities: 'probabilities', label: 'label'},
  'iris_mlp_softmax.onnx': {probabilities: 'probabilities'},
}

/** The tensors /v2/models/{name}/infer returns per fixture (a ZipMap's sequence of maps is served as its probabilities tensor). */
const V2_OUTPUTS: Record<string, string[]> = {
  'iris_svc.onnx': ['output_label', 'probabilities'],
  'iris_rf.onnx': ['output_label', 'probabilities'],
  'iris_logreg.onnx': ['label', 'probabilities'],
  'iris_mlp_softmax.onnx': ['probabilities'],
  'diabetes_linreg.onnx': ['variable'],
  'iris_ocsvm.onnx': ['label', 'scores'],
}

describe('mlops serve: every fixture model through both APIs', () => {
  it('V2_OUTPUTS names every fixture model', () => {
    expect(Object.keys(V2_OUTPUTS).sort()).to.deep.equal(Object.keys(expected.models).sort())
  })

  for (const [file, model] of Object.entries<any>(expected.models)) {
    describe(file, () => {
      let server: Server
      const classifier = CLASSIFIERS[file]

      before(async () => {
        server = await serve([
          '--model',
          fixture(file),
          ...(model.labels_file ? ['--labels', fixture(model.labels_file)] : []),
          '--model-version',
          '7',
        ])
        await ready(server)
      })
      after(async () => {
        expect(await stop(server)).to.equal(0)
      })

      it('GET /health and /metadata describe the model', async () => {
        expect(await (await fetch(`${server.url}/health`)).json()).to.deep.equal({health: 'ok'})
        const metadata = (await (await fetch(`${server.url}/metadata`)).json()) as any
        expect(metadata.inputs).to.deep.equal([{name: model.input_name, type: 'float32', shape: [null, model.n_features]}])
        expect(metadata.kind).to.equal(classifier ? 'classifier' : model.task === 'regression' ? 'regressor' : 'other')
        expect(metadata.sha256).to.equal(model.sha256)
        expect(metadata.data_sample).to.have.length(1)
      })

      it('POST /predict returns one entry per row, equal to onnxruntime in Python', async () => {
        const {status, json} = await post(`${server.url}/predict`, {data: model.sample_inputs})
        expect(status).to.equal(200)
        if (classifier) closeTo(json.prediction, model.expected[classifier.probabilities])
        else if (Object.keys(model.expected).length === 1) closeTo(json.prediction, Object.values(model.expected)[0])
        else
          closeTo(
            json.prediction,
            model.sample_inputs.map((_: unknown, row: number) =>
              Object.fromEntries(Object.entries(model.expected).map(([name, rows]) => [name, (rows as unknown[])[row]])),
            ),
          )
      })

      it('POST /predict/label: a label for one row, a list for several', async () => {
        const {status, json} = await post(`${server.url}/predict/label`, {data: model.sample_inputs})
        if (classifier) {
          expect(status).to.equal(200)
          expect(json.prediction).to.deep.equal(model.expected_labels)
          expect((await post(`${server.url}/predict/label`, {data: [model.sample_inputs[2]]})).json).to.deep.equal({
            prediction: model.expected_labels[2],
          })
        } else if (model.task === 'anomaly') {
          expect(json.prediction).to.deep.equal([1, 1, -1])
        } else {
          expect(status).to.equal(400)
          expect(json.error).to.match(/has no labels \(a regressor model\): use \/predict/)
        }
      })

      it('POST /v2/models/{name}/infer equals the expected outputs; metadata and readiness', async () => {
        const name = file.replace('.onnx', '')
        const flat = model.sample_inputs.flat()
        const {status, json} = await post(`${server.url}/v2/models/${name}/infer`, {
          id: 'r1',
          inputs: [{name: model.input_name, shape: [model.sample_inputs.length, model.n_features], datatype: 'FP32', data: flat}],
        })
        expect(status).to.equal(200)
        expect(json).to.include({model_name: name, model_version: '7', id: 'r1'})
        // Exactly the model's outputs, by name and in order: an empty or partial list must fail.
        expect(json.outputs.map((output: {name: string}) => output.name)).to.deep.equal(V2_OUTPUTS[file])
        for (const output of json.outputs) {
          const wanted =
            output.name === 'probabilities' && classifier?.probabilities === 'output_probability'
              ? model.expected.output_probability
              : model.expected[output.name]
          expect(wanted, `expected values for output ${output.name}`).to.be.an('array').with.length.above(0)
          closeTo(output.data, wanted.flat())
        }

        const metadata = (await (await fetch(`${server.url}/v2/models/${name}`)).json()) as any
        expect(metadata).to.include({name, platform: 'onnxruntime_onnx'})
        expect(metadata.inputs).to.deep.equal([{name: model.input_name, datatype: 'FP32', shape: [-1, model.n_features]}])
        expect((await fetch(`${server.url}/v2/models/${name}/ready`)).status).to.equal(200)
        expect(await (await fetch(`${server.url}/v2/health/ready`)).json()).to.deep.equal({ready: true})
        expect(await (await fetch(`${server.url}/v2/health/live`)).json()).to.deep.equal({live: true})
      })
    })
  }
})

describe('mlops serve: the original API details', () => {
  let server: Server

  before(async () => {
    server = await serve([
      '--model',
      fixture('iris_svc.onnx'),
      '--labels',
      fixture('iris_labels.json'),
      '--name',
      'iris',
      '--sample',
      '[6.3, 3.3, 6.0, 2.5]',
      '--max-body-bytes',
      '2000',
    ])
    await ready(server)
  })
  after(async () => {
    await stop(server)
  })

  it('GET /label, /predict/test and /predict/test/label use the labels and the sample', async () => {
    expect(await (await fetch(`${server.url}/label`)).json()).to.deep.equal(expected.labels)
    expect(await (await fetch(`${server.url}/predict/test/label`)).json()).to.deep.equal({prediction: 'virginica'})
    const test = (await (await fetch(`${server.url}/predict/test`)).json()) as any
    expect(test.prediction).to.have.length(1)
    expect(test.prediction[0]).to.have.length(3)
  })

  it('a flat row is one row', async () => {
    expect((await post(`${server.url}/predict/label`, {data: [5.1, 3.5, 1.4, 0.2]})).json).to.deep.equal({prediction: 'setosa'})
  })

  it('concurrent requests of different sizes each get their own answers (batched runs)', async () => {
    const rows = expected.models['iris_svc.onnx'].sample_inputs as number[][]
    const requests = Array.from({length: 60}, (_, i) => rows.slice(0, 1 + (i % 3)).map((_, j) => rows[(i + j) % 3]))
    const answers = await Promise.all(requests.map(data => post(`${server.url}/predict/label`, {data})))
    answers.forEach((answer, i) => {
      const wanted = requests[i].map(row => expected.labels[String(rows.indexOf(row))])
      expect(answer.json.prediction).to.deep.equal(wanted.length === 1 ? wanted[0] : wanted)
    })
  })

  const badInputs: Array<{name: string; path: string; body: unknown; raw?: boolean; status: number; error: RegExp}> = [
    {
      name: 'wrong width (3 values for 4)',
      path: '/predict',
      body: {data: [[5.1, 3.5, 1.4]]},
      status: 400,
      error: /row 0 has 3 values, the model expects 4/,
    },
    {
      name: 'wrong rank (a row of rows)',
      path: '/predict',
      body: {data: [[[5.1, 3.5, 1.4, 0.2]]]},
      status: 400,
      error: /row 0 has 1 values, the model expects 4/,
    },
    {
      name: 'a string value',
      path: '/predict',
      body: {data: [[5.1, 'x', 1.4, 0.2]]},
      status: 400,
      error: /row 0\[1\] must be a number, got the string "x"/,
    },
    {name: 'null value', path: '/predict/label', body: {data: [[5.1, null, 1.4, 0.2]]}, status: 400, error: /must be a number, got null/},
    {name: 'empty batch', path: '/predict', body: {data: []}, status: 400, error: /"data" is empty/},
    {name: 'data not a list', path: '/predict', body: {data: 'abc'}, status: 400, error: /"data" must be a list of rows/},
    {name: 'missing "data"', path: '/predict', body: {rows: [[1, 2, 3, 4]]}, status: 400, error: /the body must be JSON \{"data"/},
    {name: 'malformed JSON', path: '/predict', body: '{"data": [[5.1,', raw: true, status: 400, error: /malformed JSON/},
    {
      name: 'body over the limit',
      path: '/predict',
      body: {data: Array.from({length: 200}, () => [5.1, 3.5, 1.4, 0.2])},
      status: 413,
      error: /larger than the limit of 2000 bytes/,
    },
    {
      name: 'v2: unknown input name',
      path: '/v2/models/iris/infer',
      body: {inputs: [{name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4]}]},
      status: 400,
      error: /unknown input "x"; the model's input is float_input/,
    },
    {
      name: 'v2: shape and data disagree',
      path: '/v2/models/iris/infer',
      body: {inputs: [{name: 'float_input', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3, 4]}]},
      status: 400,
      error: /must hold 8 numbers for shape \[2,4\], got 4/,
    },
    {
      name: 'v2: wrong axis',
      path: '/v2/models/iris/infer',
      body: {inputs: [{name: 'float_input', shape: [1, 5], datatype: 'FP32', data: [1, 2, 3, 4, 5]}]},
      status: 400,
      error: /axis 1 is 5, the model expects 4/,
    },
    {
      name: 'v2: unknown output',
      path: '/v2/models/iris/infer',
      body: {inputs: [{name: 'float_input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4]}], outputs: [{name: 'nope'}]},
      status: 400,
      error: /unknown output nope/,
    },
    {
      name: 'v2: unknown model',
      path: '/v2/models/other/infer',
      body: {inputs: []},
      status: 404,
      error: /unknown model other; this server serves iris/,
    },
    {
      name: 'v2: datatype FOO',
      path: '/v2/models/iris/infer',
      body: {inputs: [{name: 'float_input', shape: [1, 4], datatype: 'FOO', data: [1, 2, 3, 4]}]},
      status: 400,
      error: /input float_input has datatype FP32; the request says "FOO"/,
    },
    {
      name: 'v2: datatype null',
      path: '/v2/models/iris/infer',
      body: {inputs: [{name: 'float_input', shape: [1, 4], datatype: null, data: [1, 2, 3, 4]}]},
      status: 400,
      error: /has datatype FP32; the request says null/,
    },
    {
      name: 'v2: datatype missing',
      path: '/v2/models/iris/infer',
      body: {inputs: [{name: 'float_input', shape: [1, 4], data: [1, 2, 3, 4]}]},
      status: 400,
      error: /has datatype FP32; the request says nothing/,
    },
    {
      name: 'v2: INT8 carrying 6.3',
      path: '/v2/models/iris/infer',
      body: {inputs: [{name: 'float_input', shape: [1, 4], datatype: 'INT8', data: [6.3, 3.3, 6, 2.5]}]},
      status: 400,
      error: /has datatype FP32; the request says "INT8"/,
    },
    {
      name: '1e400 in a row (Infinity once parsed)',
      path: '/predict',
      body: '{"data": [[1e400, 3.3, 6, 2.5]]}',
      raw: true,
      status: 400,
      error: /row 0\[0\] must be a finite number, got Infinity/,
    },
    {name: 'unknown route', path: '/predict/nothing', body: {}, status: 404, error: /no route POST \/predict\/nothing/},
  ]

  for (const bad of badInputs) {
    it(`bad input: ${bad.name} → ${bad.status} with a message`, async () => {
      const {status, json} = await post(`${server.url}${bad.path}`, bad.body, bad.raw)
      expect(status).to.equal(bad.status)
      expect(json.error).to.match(bad.error)
    })
  }

  it('no bad request crashed the server; /metrics counts requests by route and status and names the model', async () => {
    expect((await fetch(`${server.url}/health`)).status).to.equal(200)
    const metrics = await (await fetch(`${server.url}/metrics`)).text()
    expect(metrics).to.match(/mlops_http_requests_total\{route="\/predict",method="POST",status="400"\} \d+/)
    expect(metrics).to.match(/mlops_http_requests_total\{route="\/predict\/label",method="POST",status="200"\} \d+/)
    expect(metrics).to.contain(
      'mlops_model_info{name="iris",version="",sha256="d1f497a1f053d7cc43830cc84d0ecdc65e2dd370a4d3dedd4a49b13523e3a067"} 1',
    )
    expect(metrics).to.match(/mlops_http_request_duration_seconds_bucket\{route="\/predict\/label",le="\+Inf"\} \d+/)
    expect(metrics).to.contain('mlops_model_ready 1')
  })
})

describe('mlops serve: start-up, readiness and shutdown', () => {
  for (const [what, file, exitCode] of [
    ['a missing model file', 'missing.onnx', ExitCode.NOT_FOUND],
    ['random bytes named .onnx', 'random.onnx', ExitCode.INTEGRITY],
    ['a truncated model', 'truncated.onnx', ExitCode.INTEGRITY],
    ['an empty model file', 'empty.onnx', ExitCode.INTEGRITY],
  ] as const) {
    it(`refuses to start on ${what}: exit ${exitCode}, never listens (no fallback model)`, async () => {
      const {code, stderr} = await runCli(['serve', '--model', fixture(file), '--port', '0', '--host', '127.0.0.1'])
      expect(code).to.equal(exitCode)
      expect(stderr).to.not.contain('listening')
      // Logs are JSON lines off a terminal, the failure too: the last line says why, with the exit code.
      const lines = stderr
        .trim()
        .split('\n')
        .map(line => JSON.parse(line) as Record<string, unknown>)
      expect(lines.at(-1)).to.include({level: 'error', component: 'serve', msg: 'serve failed', exitCode})
    })

    it(`refuses to start on ${what} with --log-format text: exit ${exitCode}, one plain Error: line`, async () => {
      const {code, stderr} = await runCli(['serve', '--model', fixture(file), '--port', '0', '--log-format', 'text'])
      expect(code).to.equal(exitCode)
      expect(stderr.split('\n').filter(line => line.startsWith('Error: '))).to.have.length(1)
    })
  }

  it("--label-from: the model's own label by default; argmax (MLOPS_LABEL_FROM) answers the top probability's class, as the original server did", async () => {
    // A row where the SVC's label (versicolor) is not its top probability (virginica, 0.516 vs 0.466).
    const row = [[4.5, 3, 5.75, 0.5]]
    const own = await serve(['--model', fixture('iris_svc.onnx'), '--labels', fixture('iris_labels.json')])
    await ready(own)
    expect((await post(`${own.url}/predict/label`, {data: row})).json).to.deep.equal({prediction: 'versicolor'})
    await stop(own)
    const argmax = await serve(['--model', fixture('iris_svc.onnx'), '--labels', fixture('iris_labels.json')], {MLOPS_LABEL_FROM: 'argmax'})
    await ready(argmax)
    expect((await post(`${argmax.url}/predict/label`, {data: row})).json).to.deep.equal({prediction: 'virginica'})
    await stop(argmax)
  })

  it('a model that fails at inference on a negative value: that request → 500 (counted as 5xx), its neighbours in the same batch and other rows → 200', async () => {
    const model = join(tempDir(), 'negative-fails.onnx')
    writeNegativeFailingOnnx(fixture('iris_svc.onnx'), model)
    const server = await serve(['--model', model, '--labels', fixture('iris_labels.json')])
    await ready(server)
    const good = [6.3, 3.3, 6, 2.5]
    const negative = [6.3, 3.3, 6, -1]
    // Sent together: the batcher may run several as one batch; one that fails is run request by request.
    const answers = await Promise.all(
      Array.from({length: 24}, async (_, i) => post(`${server.url}/predict/label`, {data: [i % 3 === 0 ? negative : good]})),
    )
    for (const [i, {status, json}] of answers.entries()) {
      if (i % 3 === 0) {
        expect(status, JSON.stringify(json)).to.equal(500)
        expect(json.error).to.match(/^inference failed: .*Gather.*indices element out of data bounds, idx=1000/)
      } else expect({status, json}).to.deep.equal({status: 200, json: {prediction: 'virginica'}})
    }

    expect(await metric(server.url, 'mlops_http_requests_total', 'route="/predict/label",method="POST",status="500"')).to.equal(8)
    expect(await metric(server.url, 'mlops_http_requests_total', 'route="/predict/label",method="POST",status="200"')).to.equal(16)
    expect(await stop(server)).to.equal(0)
  })

  it('bad input: --label-from argmax on a model without probabilities (a regressor) → exit 2', async () => {
    const {code, stderr} = await runCli([
      'serve',
      '--model',
      fixture('diabetes_linreg.onnx'),
      '--label-from',
      'argmax',
      '--port',
      '0',
      '--log-format',
      'text',
    ])
    expect(code).to.equal(ExitCode.USAGE)
    expect(stderr).to.match(
      /^Error: --label-from argmax needs class probabilities, and .*diabetes_linreg\.onnx has none \(a regressor model\)$/m,
    )
  })

  it('a burst of large requests over --max-inflight-bytes: the excess gets 503 with Retry-After, the rest answers, memory stays bounded', async () => {
    const server = await serve(['--model', fixture('iris_svc.onnx'), '--max-body-bytes', '2000000', '--max-inflight-bytes', '3000000'])
    await ready(server)
    const body = JSON.stringify({data: Array.from({length: 50_000}, (_, i) => [5 + (i % 3), 3.5, 1.4, 0.2])})
    const answers = await Promise.all(
      Array.from({length: 16}, async () => {
        const response = await fetch(`${server.url}/predict`, {method: 'POST', headers: {'content-type': 'application/json'}, body})
        return {
          status: response.status,
          retryAfter: response.headers.get('retry-after'),
          json: (await response.json()) as {error?: string; prediction?: unknown[]},
        }
      }),
    )
    const ok = answers.filter(a => a.status === 200)
    const busy = answers.filter(a => a.status === 503)
    expect(ok.length + busy.length).to.equal(16)
    expect(ok.length).to.be.greaterThan(0)
    expect(busy.length).to.be.greaterThan(0)
    for (const answer of ok) expect(answer.json.prediction).to.have.length(50_000)
    for (const answer of busy) {
      expect(answer.retryAfter).to.equal('1')
      expect(answer.json.error).to.match(/^the server is busy: \d+ bytes of requests are in flight \(limit 3000000\); retry shortly$/)
    }

    // The bound the server reports, not a memory figure of this machine: the most request bytes it
    // admitted at once stayed within --max-inflight-bytes (parsing all 16 at once took about 400 MB).
    const metrics = await (await fetch(`${server.url}/metrics`)).text()
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)?.[1])
    expect(gauge('mlops_inflight_request_bytes_limit')).to.equal(3_000_000)
    expect(gauge('mlops_inflight_request_bytes_peak')).to.be.within(Buffer.byteLength(body), 3_000_000)
    expect((await post(`${server.url}/predict/label`, {data: [[6.3, 3.3, 6, 2.5]]})).json).to.deep.equal({prediction: 2})
    await stop(server)
  })

  it('MODEL_FILEPATH and PORT from the environment, as the original server took them', async () => {
    const server = await serve([], {MODEL_FILEPATH: fixture('iris_logreg.onnx'), LABEL_FILEPATH: fixture('iris_labels.json')})
    await ready(server)
    expect((await post(`${server.url}/predict/label`, {data: [[6.3, 3.3, 6, 2.5]]})).json).to.deep.equal({prediction: 'virginica'})
    await stop(server)
  })

  it('/ready is 503 while the model loads (health already 200), then 200', async () => {
    const dir = tempDir()
    // 100k operators: a few MB on disk, about 2 s for onnxruntime to load and optimize.
    writeSlowLoadingOnnx(join(dir, 'slow.onnx'), 100_000)
    const server = await serve(['--model', join(dir, 'slow.onnx')])
    const first = await fetch(`${server.url}/ready`)
    expect(first.status).to.equal(503)
    expect(((await first.json()) as any).reason).to.match(/loading the model|warming up/)
    expect((await fetch(`${server.url}/health`)).status).to.equal(200)
    expect((await post(`${server.url}/predict`, {data: [[1, 2, 3, 4]]})).status).to.equal(503)
    await ready(server)
    expect((await post(`${server.url}/predict`, {data: [[1, -2, 3, -4]]})).json).to.deep.equal({prediction: [[1, 0, 3, 0]]})
  })

  it('SIGTERM finishes the request in flight, then exits 0', async () => {
    const server = await serve(['--model', fixture('iris_svc.onnx')])
    await ready(server)
    // Headers and half the body first, the signal, then the rest: the request is in flight when SIGTERM lands.
    const body = Buffer.from(JSON.stringify({data: Array.from({length: 1000}, (_, i) => [5 + (i % 3), 3.5, 1.4, 0.2])}))
    let request!: ReturnType<typeof httpRequest>
    const answer = new Promise<{status: number; text: string}>((resolve, reject) => {
      request = httpRequest(
        `${server.url}/predict`,
        {method: 'POST', headers: {'content-type': 'application/json', 'content-length': body.length}},
        response => {
          let text = ''
          response.on('data', chunk => {
            text += chunk
          })
          response.on('end', () => resolve({status: response.statusCode!, text}))
        },
      )
      request.on('error', reject)
    })
    request.write(body.subarray(0, body.length / 2))
    // Each step waits for what the server reports: the request admitted, then the shutdown begun.
    await waitFor(async () => (await metric(server.url, 'mlops_inflight_request_bytes_peak')) >= body.length, 'the request admitted')
    server.child.kill('SIGTERM')
    await waitFor(async () => server.stderr().includes('shutting down: finishing in-flight requests'), 'the shutdown begun')
    request.end(body.subarray(body.length / 2))
    const {status, text} = await answer
    expect(status).to.equal(200)
    expect(JSON.parse(text).prediction).to.have.length(1000)
    expect(await server.exited).to.equal(0)
    expect(server.stderr()).to.match(/"msg":"shutting down: finishing in-flight requests"[^\n]*\n.*"msg":"stopped"/)
  })

  it('a port already in use → exit 2 naming the port', async () => {
    const server = await serve(['--model', fixture('iris_svc.onnx')])
    const port = new URL(server.url).port
    const {code, stderr} = await runCli(['serve', '--model', fixture('iris_svc.onnx'), '--port', port, '--host', '127.0.0.1'])
    expect(code).to.equal(ExitCode.USAGE)
    expect(
      stderr
        .trim()
        .split('\n')
        .map(line => JSON.parse(line))
        .at(-1),
    ).to.include({msg: 'serve failed', code: 'USAGE', message: `port ${port} on 127.0.0.1 is already in use`})
    await stop(server)
  })
})
