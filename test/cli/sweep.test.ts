import {expect} from 'chai'
import {spawn} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {runCli} from '../helpers/cli.js'
import {README, exitCodeNames} from '../helpers/readme.js'
import {fixture, tempDir} from '../helpers/stores.js'

/**
 * A bounded, seeded sweep of hostile values over the commands' flags and
 * arguments, and over the model server's HTTP API. Whatever the value: a
 * documented exit code (never 1, never a stack trace, never an echoed
 * credential), and a server that answers 4xx and stays up. The seed is
 * printed in each test's name, so a failure is reproducible.
 */
const SEED = Number(process.env.MLOPS_SWEEP_SEED ?? 20_261_128)

function random(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x / 2 ** 32
  }
}

const HOSTILE = [
  '',
  ' ',
  '-1',
  '0',
  '99999999999999999999',
  'abc',
  '1e400',
  '../../../etc/passwd',
  '/dev/null',
  'a'.repeat(300),
  'gs://',
  's3://x/y',
  'http://sweep-user:sweep-secret@127.0.0.1:1',
  'moon',
  'x@y@z',
  '@',
  'iris@',
  '@1',
  'iris@../1',
  'Ω≈ç√',
  '--json',
  '{"a":',
  '[1,2',
  'null',
  'true',
  '=',
  'a=b=c',
  // Found by the held-out sweep: a value that is a YAML document, credentials in a registry or an endpoint.
  'replicas=2\nkind: Secret',
  'sweep-user:sweep-secret@127.0.0.1:1/sweep/iris',
  'http://127.0.0.1:1/?key=sweep-secret',
]

/** Each command with arguments that would otherwise be fine, and the flags to try. None of these can start a long-running process. */
const COMMANDS: Array<{args: string[]; flags: string[]}> = [
  {
    args: ['model', 'push', 'MODEL', '--name', 'iris'],
    flags: ['name', 'version', 'labels', 'meta', 'alias', 'store', 'gcs-endpoint', 'store-timeout'],
  },
  {args: ['model', 'list'], flags: ['store', 'gcs-endpoint', 'store-timeout']},
  {args: ['model', 'show', 'iris@1'], flags: ['store', 'gcs-endpoint']},
  {args: ['model', 'pull', 'iris@1', '--to', 'out/'], flags: ['to', 'labels-to', 'termination-log', 'log-format', 'store']},
  {args: ['model', 'alias', 'set', 'iris@1', 'prod'], flags: ['store']},
  {args: ['model', 'alias', 'rm', 'iris', 'prod'], flags: ['store']},
  {args: ['model', 'rm', 'iris@9', '--yes'], flags: ['store']},
  {args: ['model', 'publish', 'iris@1', '--to', '127.0.0.1:1/sweep/iris'], flags: ['to', 'tag', 'username', 'store']},
  {
    args: ['render', '--model', 'iris@1', '--store', 'gs://sweep-bucket', '--gcs-endpoint', 'http://127.0.0.1:1'],
    flags: ['model', 'set', 'values', 'namespace', 'tag', 'repository', 'out', 'store-timeout', 'delivery'],
  },
  {args: ['status', '--target', 'k8s'], flags: ['namespace', 'context', 'target']},
  {args: ['delete', '--target', 'k8s', '--yes'], flags: ['namespace', 'context', 'target']},
  {args: ['rollback'], flags: ['namespace', 'context', 'to-revision', 'timeout']},
  {
    args: ['deploy', '--target', 'k8s', '--model', 'iris@1'],
    flags: ['model', 'set', 'namespace', 'timeout', 'dry-run', 'context', 'delivery'],
  },
  {args: ['image', 'check', '--model', 'iris@1'], flags: ['model', 'image', 'store']},
  {args: ['image', 'build'], flags: ['tag', 'repository', 'base-image']},
  {args: ['image', 'push'], flags: ['tag', 'repository', 'username']},
  {args: ['image', 'secret'], flags: ['name', 'namespace', 'context', 'username']},
  {
    args: ['init', 'sweep-project', '--yes'],
    flags: ['name', 'model-name', 'store', 'image-repository', 'namespace', 'replicas', 'cpu', 'memory'],
  },
  {
    args: ['predict', '--url', 'http://127.0.0.1:1'],
    flags: ['url', 'data', 'file', 'endpoint', 'protocol', 'requests', 'concurrency', 'expect'],
  },
]

/** The README's exit-code table: a hostile value must end with one of its codes, other than 1 and 130. */
const documented = exitCodeNames(readFileSync(README, 'utf8'))

describe(`hostile-value sweep over every command (seed ${SEED})`, function () {
  this.timeout(600_000)
  let project: string
  let env: Record<string, string>

  before(async () => {
    project = tempDir()
    writeFileSync(join(project, 'mlops.yaml'), 'name: sweep\nmodel:\n  name: iris\n')
    env = {KUBECONFIG: join(project, 'no-kubeconfig'), DOCKER_HOST: 'tcp://127.0.0.1:1', MLOPS_STORE_TIMEOUT: '1'}
    const pushed = await runCli(['model', 'push', fixture('iris_svc.onnx'), '--labels', fixture('iris_labels.json')], env, project)
    expect(pushed.code, pushed.stderr).to.equal(0)
  })

  it('150 cases: an exit code from the README table (not 1), one clear error, no stack trace, no echoed credential', async () => {
    const next = random(SEED)
    const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)]
    const cases = Array.from({length: 150}, () => {
      const command = pick(COMMANDS)
      const value = pick(HOSTILE)
      const args = command.args.map(arg => (arg === 'MODEL' ? fixture('iris_logreg.onnx') : arg))
      // Half the time a flag gets the value; otherwise it replaces a positional argument.
      const positional = args.map((arg, i) => (arg.startsWith('-') || args[i - 1]?.startsWith('--') ? -1 : i)).filter(i => i >= 2)
      if (next() < 0.5 || positional.length === 0) args.push(`--${pick(command.flags)}`, value)
      else args[pick(positional)] = value
      return args
    })
    const failures: string[] = []
    let index = 0
    const worker = async () => {
      while (index < cases.length) {
        const args = cases[index++]
        const run = await runCli(args, env, project, {timeoutMs: 20_000})
        const output = run.stdout + run.stderr
        const problem =
          run.code === null
            ? 'no answer within 20 s (killed)'
            : !documented.has(run.code) || run.code === ExitCode.UNEXPECTED || run.code === ExitCode.INTERRUPTED
              ? `exit ${run.code} (${documented.get(run.code) ?? 'not in the README table'})`
              : /this is a bug|\n\s+at .+:\d+:\d+/.test(output)
                ? 'a stack trace or "bug"'
                : output.includes('sweep-secret')
                  ? 'an echoed credential'
                  : run.code !== 0 && !/^Error: .+/m.test(run.stderr) && !/"level":"error"/.test(run.stderr)
                    ? 'no Error: line on stderr (nor a JSON error log line under --log-format json)'
                    : undefined
        if (problem)
          failures.push(
            `${problem}: mlops ${args.map(a => JSON.stringify(a)).join(' ')} → ${run.code}: ${output.trim().split('\n').slice(0, 3).join(' | ')}`,
          )
      }
    }

    await Promise.all([worker(), worker()])
    expect(failures, failures.join('\n')).to.deep.equal([])
  })
})

describe(`hostile-body sweep over the model server's HTTP API (seed ${SEED})`, function () {
  this.timeout(120_000)

  it('400 bodies: only 200, 400, 404 or 413 answers, never 500; the server stays up and serves', async () => {
    const child = spawn(
      process.execPath,
      [
        join(import.meta.dirname, '..', '..', 'bin', 'run.js'),
        'serve',
        '--model',
        fixture('iris_svc.onnx'),
        '--labels',
        fixture('iris_labels.json'),
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--max-body-bytes',
        '20000',
        '--log-format',
        'json',
      ],
      {stdio: ['ignore', 'ignore', 'pipe']},
    )
    let log = ''
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', chunk => {
        log += chunk
        const line = log.split('\n').find(l => l.includes('"msg":"listening"'))
        if (line) resolve(JSON.parse(line).url)
      })
      child.once('exit', code => reject(new Error(`serve exited ${code}: ${log}`)))
    })
    try {
      while (!(await fetch(`${url}/ready`)).ok) await new Promise(resolve => setTimeout(resolve, 50))
      const next = random(SEED)
      const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)]
      const values = [5.1, -1, 0, 1e308, '1', null, true, [], {}, [1, 2], 'x'.repeat(50), Number.MAX_SAFE_INTEGER]
      const row = (): unknown =>
        next() < 0.6
          ? [5.1, 3.5, 1.4, 0.2].map(v => (next() < 0.15 ? pick(values) : v))
          : Array.from({length: Math.floor(next() * 7)}, () => pick(values))
      const bodies: Array<() => unknown> = [
        () => ({data: Array.from({length: Math.floor(next() * 4)}, row)}),
        () => ({data: row()}),
        () => ({
          inputs: [
            {
              name: pick(['float_input', 'x', '']),
              shape: pick([[1, 4], [4], [-1, 4], 'x', null]),
              datatype: pick(['FP32', 'INT8', 'FOO', null]),
              data: row(),
            },
          ],
        }),
        () => pick(values),
        () => ({data: {a: 1}}),
        () => '{"data": [[1e400, 1, 1, 1]]}',
        () => `{"data": [${'['.repeat(Math.floor(next() * 200))}`,
      ]
      const statuses = new Map<number, number>()
      for (let i = 0; i < 400; i++) {
        const body = pick(bodies)()
        const path = pick(['/predict', '/predict/label', '/v2/models/iris_svc/infer', '/v2/models/other/infer', '/predict/test'])
        const response = await fetch(`${url}${path}`, {
          method: 'POST',
          headers: {'content-type': 'application/json'},
          body: typeof body === 'string' ? body : JSON.stringify(body),
        })
        await response.arrayBuffer()
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
        expect([200, 400, 404, 413], `${path} ${JSON.stringify(body).slice(0, 200)} → ${response.status}`).to.include(response.status)
      }

      expect(statuses.get(400)).to.be.greaterThan(50)
      expect((await fetch(`${url}/health`)).ok).to.equal(true)
      const answer = await (
        await fetch(`${url}/predict/label`, {
          method: 'POST',
          headers: {'content-type': 'application/json'},
          body: '{"data": [[6.3, 3.3, 6, 2.5]]}',
        })
      ).json()
      expect(answer).to.deep.equal({prediction: 'virginica'})
    } finally {
      child.kill('SIGTERM')
    }
  })
})
