import {expect} from 'chai'
import {type ChildProcess, spawn} from 'node:child_process'
import {mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {type Server, type ServerResponse, createServer, request as httpRequest} from 'node:http'
import type {AddressInfo} from 'node:net'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {freePort, waitFor} from '../env/ports.js'
import {runCli} from '../helpers/cli.js'
import {metric} from '../helpers/metrics.js'
import {fixture, tempDir} from '../helpers/stores.js'

const bin = join(import.meta.dirname, '..', '..', 'bin', 'run.js')
const RESULTS = ['agree', 'disagree', 'error', 'timeout', 'dropped'] as const
type Result = (typeof RESULTS)[number]

interface Serve {
  url: string
  child: ChildProcess
  /** Our JSON log lines so far. */
  lines: () => Array<Record<string, unknown>>
  exited: Promise<number | null>
}

const running = new Set<ChildProcess>()
const httpServers = new Set<Server>()

after(() => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  running.clear()
  for (const server of httpServers) server.close()
  httpServers.clear()
})

/** A real `mlops serve` of an iris fixture (name iris, the labels file) on a free port, ready. */
async function serveIris(model: 'iris_rf.onnx' | 'iris_svc.onnx', args: string[] = [], env: Record<string, string> = {}): Promise<Serve> {
  const child = spawn(
    process.execPath,
    [
      bin,
      'serve',
      '--model',
      fixture(model),
      '--labels',
      fixture('iris_labels.json'),
      '--name',
      'iris',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--log-format',
      'json',
      ...args,
    ],
    {env: {...process.env, MLOPS_WORKERS: '1', ...env}, stdio: ['ignore', 'ignore', 'pipe']},
  )
  running.add(child)
  let stderr = ''
  const lines = () =>
    stderr
      .split('\n')
      .filter(line => line.startsWith('{'))
      .map(line => JSON.parse(line) as Record<string, unknown>)
  const exited = new Promise<number | null>(resolve => {
    child.once('exit', code => resolve(code))
  })
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', chunk => {
      stderr += chunk
      const listening = lines().find(line => line.msg === 'listening')
      if (listening) resolve(listening.url as string)
    })
    void exited.then(code => reject(new Error(`serve exited with ${code} before listening:\n${stderr}`)))
  })
  await waitFor(async () => (await fetch(`${url}/ready`)).ok, `${model} ready`)
  return {url, child, lines, exited}
}

async function stop(server: Serve): Promise<number | null> {
  server.child.kill('SIGTERM')
  const code = await server.exited
  running.delete(server.child)
  return code
}

/** A tiny HTTP server of the test's own, standing in for a candidate that misbehaves. */
async function candidateStub(handle: (response: ServerResponse) => void): Promise<{url: string; server: Server; received: () => number}> {
  let received = 0
  const server = createServer((request, response) => {
    received++
    response.on('error', () => {})
    request.resume()
    request.on('end', () => handle(response))
  })
  httpServers.add(server)
  await new Promise<void>(resolve => {
    server.listen(0, '127.0.0.1', resolve)
  })
  return {url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, received: () => received}
}

/** Iris rows from the reference CSV: every 20th, 50 rows across the three classes and their borders. */
const rows = readFileSync(fixture('iris_reference.csv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .filter((_, i) => i % 20 === 0)
  .map(line => line.split(',').map(Number))

interface Answer {
  status: number
  text: string
}

/** One row per request, in order: what a client gets back, byte for byte. */
async function ask(url: string, path: '/predict' | '/predict/label' | '/v2/models/iris/infer', row: number[]): Promise<Answer> {
  const body =
    path === '/v2/models/iris/infer' ? {inputs: [{name: 'float_input', shape: [1, 4], datatype: 'FP32', data: row}]} : {data: [row]}
  const response = await fetch(`${url}${path}`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(body)})
  return {status: response.status, text: await response.text()}
}

async function askAll(url: string, path: Parameters<typeof ask>[1], batch = rows): Promise<Answer[]> {
  const answers: Answer[] = []
  for (const row of batch) answers.push(await ask(url, path, row))
  return answers
}

async function shadowCounts(url: string): Promise<Record<Result, number>> {
  const counts = {} as Record<Result, number>
  for (const result of RESULTS) counts[result] = await metric(url, 'mlops_shadow_requests_total', `result="${result}"`)
  return counts
}

/** Waits until the stable has counted `total` mirrored requests (they finish after the answers), then gives the counts. */
async function settled(url: string, total: number): Promise<Record<Result, number>> {
  await waitFor(
    async () => Object.values(await shadowCounts(url)).reduce((sum, count) => sum + count, 0) >= total,
    `${total} mirrored requests counted`,
  )
  return shadowCounts(url)
}

describe('serve: shadow traffic to a candidate', function () {
  this.timeout(120_000)
  let svc: Serve
  let rf: Serve
  let plain: Answer[]

  before(async () => {
    ;[svc, rf] = await Promise.all([serveIris('iris_svc.onnx'), serveIris('iris_rf.onnx')])
    // What the stable answers without any shadow: the answers every shadowed run must match byte for byte.
    plain = await askAll(svc.url, '/predict/label')
  })

  after(async () => {
    await Promise.all([stop(svc), stop(rf)])
  })

  it('SVC against itself, sample 1: every mirrored request agrees, on /predict, /predict/label and v2 infer; answers unchanged', async () => {
    const stable = await serveIris('iris_svc.onnx', ['--shadow-url', svc.url, '--shadow-sample', '1'])
    try {
      expect(await askAll(stable.url, '/predict/label')).to.deep.equal(plain)
      await askAll(stable.url, '/predict', rows.slice(0, 5))
      await askAll(stable.url, '/v2/models/iris/infer', rows.slice(0, 5))
      // Not mirrored: reads of the server's own sample and labels.
      await fetch(`${stable.url}/predict/test`)
      await fetch(`${stable.url}/label`)
      const total = rows.length + 10
      expect(await settled(stable.url, total)).to.deep.equal({agree: total, disagree: 0, error: 0, timeout: 0, dropped: 0})
      expect(await metric(stable.url, 'mlops_shadow_request_duration_seconds_count')).to.equal(total)
      expect(stable.lines().find(line => line.msg === 'shadow on')).to.include({url: `${svc.url}/`, sample: 1, timeoutMs: 2000})
    } finally {
      await stop(stable)
    }
  })

  it('SVC against the random forest, sample 1: the rows whose labels differ are counted as disagreeing; answers unchanged', async () => {
    const candidate = await askAll(rf.url, '/predict/label')
    const differing = candidate.filter((answer, i) => answer.text !== plain[i].text).length
    expect(differing, 'the fixtures disagree on some of these rows').to.be.within(1, rows.length - 1)
    const stable = await serveIris('iris_svc.onnx', ['--shadow-url', rf.url, '--shadow-sample', '1'])
    try {
      expect(await askAll(stable.url, '/predict/label')).to.deep.equal(plain)
      expect(await settled(stable.url, rows.length)).to.deep.equal({
        agree: rows.length - differing,
        disagree: differing,
        error: 0,
        timeout: 0,
        dropped: 0,
      })
    } finally {
      await stop(stable)
    }
  })

  it('a candidate that is down (connection refused): every mirrored request is an error; answers unchanged', async () => {
    const stable = await serveIris('iris_svc.onnx', ['--shadow-url', `http://127.0.0.1:${await freePort()}`, '--shadow-sample', '1'])
    try {
      expect(await askAll(stable.url, '/predict/label')).to.deep.equal(plain)
      expect(await settled(stable.url, rows.length)).to.include({error: rows.length, agree: 0})
      expect(await metric(stable.url, 'mlops_shadow_request_duration_seconds_count')).to.equal(0)
    } finally {
      expect(await stop(stable)).to.equal(0)
    }
  })

  it('a candidate slower than --shadow-timeout 200ms: timeouts counted; answers unchanged', async () => {
    const slow = await candidateStub(response => {
      setTimeout(() => response.end('{"prediction": "setosa"}'), 1500)
    })
    const stable = await serveIris('iris_svc.onnx', ['--shadow-url', slow.url, '--shadow-sample', '1', '--shadow-timeout', '200ms'])
    try {
      const batch = rows.slice(0, 10)
      expect(await askAll(stable.url, '/predict/label', batch)).to.deep.equal(plain.slice(0, 10))
      expect(await settled(stable.url, batch.length)).to.deep.equal({agree: 0, disagree: 0, error: 0, timeout: 10, dropped: 0})
    } finally {
      await stop(stable)
      slow.server.close()
    }
  })

  it('a candidate that hangs, --shadow-queue 2: sampled requests beyond 2 in flight are dropped, and SIGTERM does not wait for them', async function () {
    // Far below the 60 s --shadow-timeout: a stop that waited for the mirrored requests fails here.
    this.timeout(30_000)
    const open = new Set<ServerResponse>()
    const hanging = await candidateStub(response => open.add(response))
    const stable = await serveIris('iris_svc.onnx', [
      '--shadow-url',
      hanging.url,
      '--shadow-sample',
      '1',
      '--shadow-queue',
      '2',
      '--shadow-timeout',
      '60s',
    ])
    const batch = rows.slice(0, 6)
    expect(await askAll(stable.url, '/predict/label', batch)).to.deep.equal(plain.slice(0, 6))
    expect(await settled(stable.url, 4)).to.deep.equal({agree: 0, disagree: 0, error: 0, timeout: 0, dropped: 4})
    await waitFor(async () => open.size === 2, 'the two mirrored requests at the candidate')
    const closed = [...open].map(
      response =>
        new Promise<void>(resolve => {
          response.once('close', resolve)
        }),
    )
    // The stop aborts the mirrored requests: the candidate sees both connections closed.
    expect(await stop(stable)).to.equal(0)
    await Promise.all(closed)
    hanging.server.close()
  })

  it('a candidate that crashes mid-answer, answers garbage, a huge body, a wrong shape or a 500: each an error; answers unchanged', async () => {
    const modes = ['crash', 'garbage', 'huge', 'huge declared', 'wrong shape', 'status 500'] as const
    let mode: (typeof modes)[number] = 'crash'
    const hostile = await candidateStub(response => {
      switch (mode) {
        case 'crash': {
          response.writeHead(200, {'content-type': 'application/json', 'content-length': '100'})
          response.write('{"prediction": ')
          setTimeout(() => response.socket?.destroy(), 20)
          return
        }

        case 'garbage': {
          response.end('this is not json')
          return
        }

        case 'huge': {
          // 8 MiB streamed without a length, far over the stable's 64 KiB body limit.
          response.writeHead(200, {'content-type': 'application/json'})
          const chunk = Buffer.alloc(64 * 1024, 'x')
          let sent = 0
          const more = () => {
            while (sent < 128 && !response.destroyed) {
              sent++
              if (!response.write(chunk)) return response.once('drain', more)
            }

            response.end()
          }

          more()
          return
        }

        case 'huge declared': {
          response.writeHead(200, {'content-type': 'application/json', 'content-length': String(8 << 20)})
          response.write('{"prediction": [')
          return
        }

        case 'wrong shape': {
          response.end('{"prediction": {"setosa": true}}')
          return
        }

        case 'status 500': {
          response.writeHead(500).end('{"prediction": "setosa"}')
        }
      }
    })
    const stable = await serveIris('iris_svc.onnx', [
      '--shadow-url',
      hostile.url,
      '--shadow-sample',
      '1',
      '--max-body-bytes',
      String(64 * 1024),
    ])
    try {
      for (const [index, next] of modes.entries()) {
        mode = next
        expect(await ask(stable.url, '/predict/label', rows[index]), mode).to.deep.equal(plain[index])
        expect(await settled(stable.url, index + 1), mode).to.deep.equal({agree: 0, disagree: 0, error: index + 1, timeout: 0, dropped: 0})
      }

      expect((await fetch(`${stable.url}/health`)).status).to.equal(200)
    } finally {
      expect(await stop(stable)).to.equal(0)
      hostile.server.close()
    }
  })

  it('--shadow-config: created later starts the shadow, changed uses the new URL, deleted stops it (a ConfigMap volume: symlinks swapped)', async () => {
    const volume = tempDir('mlops-shadow-')
    const config = join(volume, 'shadow.json')
    let version = 0
    // What the kubelet does to a ConfigMap volume: a new timestamped folder, then ..data swapped to it by a rename.
    const publish = (text: string) => {
      const folder = `..${++version}`
      mkdirSync(join(volume, folder))
      writeFileSync(join(volume, folder, 'shadow.json'), text)
      symlinkSync(folder, join(volume, '..data_tmp'))
      renameSync(join(volume, '..data_tmp'), join(volume, '..data'))
    }

    const stable = await serveIris('iris_svc.onnx', ['--shadow-config', config, '--shadow-sample', '1'])
    const candidateRequests = async (server: Serve) => metric(server.url, 'mlops_http_requests_total', 'route="/predict/label"')
    try {
      await askAll(stable.url, '/predict/label', rows.slice(0, 3))
      expect(await shadowCounts(stable.url)).to.deep.equal({agree: 0, disagree: 0, error: 0, timeout: 0, dropped: 0})
      const workers = async () => [
        await metric(stable.url, 'mlops_shadow_workers', 'state="on"'),
        await metric(stable.url, 'mlops_shadow_workers', 'state="off"'),
      ]
      expect(await workers()).to.deep.equal([0, 1])

      publish(JSON.stringify({url: svc.url}))
      symlinkSync('..data/shadow.json', config)
      await waitFor(async () => stable.lines().some(line => line.msg === 'shadow on'), 'shadow on')
      expect(await workers()).to.deep.equal([1, 0])
      const [svcBefore, rfBefore] = [await candidateRequests(svc), await candidateRequests(rf)]
      await askAll(stable.url, '/predict/label', rows.slice(0, 5))
      expect(await settled(stable.url, 5)).to.include({agree: 5})
      expect(await candidateRequests(svc)).to.equal(svcBefore + 5)

      publish(JSON.stringify({url: rf.url, timeoutMs: 1000}))
      await waitFor(async () => stable.lines().filter(line => line.msg === 'shadow on').length === 2, 'shadow on the new URL')
      expect(stable.lines().findLast(line => line.msg === 'shadow on')).to.include({url: `${rf.url}/`, sample: 1, timeoutMs: 1000})
      await askAll(stable.url, '/predict/label', rows.slice(0, 5))
      await settled(stable.url, 10)
      expect(await candidateRequests(rf)).to.equal(rfBefore + 5)
      expect(await candidateRequests(svc)).to.equal(svcBefore + 5)

      // Several candidates (the pods deploy --shadow lists): mirrored to in turn.
      publish(JSON.stringify({urls: [svc.url, rf.url]}))
      await waitFor(async () => stable.lines().filter(line => line.msg === 'shadow on').length === 3, 'shadow on two URLs')
      await askAll(stable.url, '/predict/label', rows.slice(0, 4))
      await settled(stable.url, 14)
      expect([await candidateRequests(svc), await candidateRequests(rf)]).to.deep.equal([svcBefore + 7, rfBefore + 7])

      rmSync(config)
      await waitFor(async () => stable.lines().some(line => line.msg === 'shadow off'), 'shadow off')
      expect(await workers()).to.deep.equal([0, 1])
      const counted = await shadowCounts(stable.url)
      expect(await askAll(stable.url, '/predict/label', rows.slice(0, 5))).to.deep.equal(plain.slice(0, 5))
      expect(await shadowCounts(stable.url)).to.deep.equal(counted)
      expect(await candidateRequests(rf)).to.equal(rfBefore + 7)
    } finally {
      await stop(stable)
    }
  })

  it('--shadow-config malformed (credentials in its url, then not JSON): shadow off, one warning each, no secret logged, never a crash', async () => {
    const config = join(tempDir('mlops-shadow-'), 'shadow.json')
    writeFileSync(config, JSON.stringify({url: `http://user:s3cret-pw@127.0.0.1:${new URL(svc.url).port}`}))
    const stable = await serveIris('iris_svc.onnx', ['--shadow-config', config, '--shadow-sample', '1'])
    const warnings = () => stable.lines().filter(line => line.level === 'warn')
    try {
      await waitFor(async () => warnings().length === 1, 'a warning')
      expect(warnings()[0]).to.include({msg: 'shadow config ignored: shadow off', config})
      expect(warnings()[0].error).to.match(/^url must not carry credentials/)
      expect(await askAll(stable.url, '/predict/label', rows.slice(0, 3))).to.deep.equal(plain.slice(0, 3))
      // Read again every second, the same file is not warned about again.
      await new Promise(resolve => {
        setTimeout(resolve, 2500)
      })
      expect(warnings()).to.have.length(1)

      writeFileSync(config, '{"url": "http://127.0.0.1:1",')
      await waitFor(async () => warnings().length === 2, 'a second warning')
      expect(warnings()[1].error).to.equal('it is not JSON')
      expect(await askAll(stable.url, '/predict/label', rows.slice(0, 3))).to.deep.equal(plain.slice(0, 3))
      expect(await shadowCounts(stable.url)).to.deep.equal({agree: 0, disagree: 0, error: 0, timeout: 0, dropped: 0})
      expect(JSON.stringify(stable.lines())).to.not.include('s3cret-pw')
    } finally {
      expect(await stop(stable)).to.equal(0)
    }
  })

  it('--workers 2: every worker mirrors, and /metrics sums their shadow counters', async () => {
    const stable = await serveIris('iris_svc.onnx', ['--shadow-url', svc.url, '--shadow-sample', '1', '--workers', '2'], {
      MLOPS_WORKERS: '2',
    })
    try {
      const workers = new Set<string>()
      for (const row of rows.slice(0, 20)) {
        // A connection of its own each: cluster hands each to the next worker.
        const answer = await new Promise<{worker: string; text: string}>((resolve, reject) => {
          const body = JSON.stringify({data: [row]})
          const request = httpRequest(
            `${stable.url}/predict/label`,
            {method: 'POST', agent: false, headers: {'content-type': 'application/json', 'content-length': body.length}},
            response => {
              let text = ''
              response.on('data', chunk => {
                text += chunk
              })
              response.on('end', () => resolve({worker: String(response.headers['x-mlops-worker']), text}))
            },
          )
          request.on('error', reject)
          request.end(body)
        })
        workers.add(answer.worker)
      }

      expect(workers.size, 'answered by both workers').to.equal(2)
      expect(await settled(stable.url, 20)).to.deep.equal({agree: 20, disagree: 0, error: 0, timeout: 0, dropped: 0})
      expect(await metric(stable.url, 'mlops_shadow_request_duration_seconds_count')).to.equal(20)
    } finally {
      expect(await stop(stable)).to.equal(0)
    }
  })

  for (const [name, args, env] of [
    ['--shadow-sample 0', ['--shadow-url', 'http://127.0.0.1:1', '--shadow-sample', '0'], {}],
    ['--shadow-sample 2', ['--shadow-url', 'http://127.0.0.1:1', '--shadow-sample', '2'], {}],
    ['--shadow-sample abc', ['--shadow-url', 'http://127.0.0.1:1', '--shadow-sample', 'abc'], {}],
    ['--shadow-url ftp://x', ['--shadow-url', 'ftp://x'], {}],
    ['--shadow-url http://user:s3cret-pw@host', ['--shadow-url', 'http://user:s3cret-pw@host'], {}],
    ['MLOPS_SHADOW_URL=http://user:s3cret-pw@host', [], {MLOPS_SHADOW_URL: 'http://user:s3cret-pw@host'}],
    ['--shadow-timeout 2h', ['--shadow-url', 'http://127.0.0.1:1', '--shadow-timeout', '2h'], {}],
    ['--shadow-url with --shadow-config', ['--shadow-url', 'http://127.0.0.1:1', '--shadow-config', '/tmp/shadow.json'], {}],
  ] as const)
    it(`refuses ${name}: exit 2, one line, no credentials echoed`, async () => {
      const run = await runCli(
        ['serve', '--model', fixture('iris_svc.onnx'), '--port', '0', '--host', '127.0.0.1', ...args],
        {MLOPS_WORKERS: '1', ...env},
        undefined,
        {timeoutMs: 60_000},
      )
      expect(run.code, run.stderr).to.equal(ExitCode.USAGE)
      const lines = run.stderr.trim().split('\n')
      expect(lines, run.stderr).to.have.length(1)
      expect(lines[0]).to.match(/shadow/i)
      expect(run.stderr + run.stdout).to.not.include('s3cret-pw')
    })
})
