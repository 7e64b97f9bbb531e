import type {AppsV1Api, CoreV1Api} from '@kubernetes/client-node'
import {expect} from 'chai'
import {type ChildProcess, spawn} from 'node:child_process'
import {copyFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {waitFor} from '../env/ports.js'
import {fixture} from '../helpers/stores.js'
import {KUBECTL, clientsFor, currentPods} from './cluster.js'
import {type RealNodeProject, realNodeProject} from './environment.js'

const NAMESPACE = 'e2e-canary'
const VIRGINICA = {data: [[6.3, 3.3, 6.0, 2.5]]}

/**
 * Requests through the Service, as users send them: `kubectl proxy`, then the API server's service
 * proxy, which picks one of the Service's ready endpoints per request (both tracks' pods).
 */
class ServiceLoop {
  private stopped = false
  private readonly loops: Promise<void>[] = []
  ok = 0
  readonly errors: string[] = []

  private constructor(
    private readonly proxy: ChildProcess,
    private readonly url: string,
  ) {}

  static async start(kubeconfig: string, connections: number): Promise<ServiceLoop> {
    const proxy = spawn(KUBECTL, ['--kubeconfig', kubeconfig, 'proxy', '--port=0'], {stdio: ['ignore', 'pipe', 'pipe']})
    let output = ''
    proxy.stdout.on('data', chunk => {
      output += chunk
    })
    await waitFor(async () => /Starting to serve on 127\.0\.0\.1:\d+/.test(output), 'kubectl proxy', 15_000)
    const port = /127\.0\.0\.1:(\d+)/.exec(output)![1]
    const loop = new ServiceLoop(proxy, `http://127.0.0.1:${port}/api/v1/namespaces/${NAMESPACE}/services/iris:http/proxy/predict/label`)
    for (let i = 0; i < connections; i++) loop.loops.push(loop.run())
    return loop
  }

  async stop(): Promise<{ok: number; errors: string[]}> {
    this.stopped = true
    await Promise.all(this.loops)
    this.proxy.kill('SIGTERM')
    return {ok: this.ok, errors: this.errors}
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const response = await fetch(this.url, {
          method: 'POST',
          headers: {'content-type': 'application/json'},
          body: JSON.stringify(VIRGINICA),
          signal: AbortSignal.timeout(10_000),
        })
        const text = await response.text()
        if (response.ok && text.includes('virginica')) this.ok++
        else this.errors.push(`HTTP ${response.status} ${text.slice(0, 200)}`)
      } catch (error) {
        this.errors.push((error as Error).message)
      }
    }
  }
}

describe('deploy --canary on a real node: steps, gates from both tracks, abort and promote', function () {
  this.timeout(20 * 60 * 1000)
  let setup: RealNodeProject
  let core: CoreV1Api
  let apps: AppsV1Api
  const mlops = async (...args: string[]) => setup.mlops(...args)
  /** What a canary may leave: its Deployment, Service and pods. */
  const leftovers = async () => [
    ...(await apps.listNamespacedDeployment({namespace: NAMESPACE})).items
      .map(d => `deployment/${d.metadata!.name}`)
      .filter(n => n.endsWith('-canary')),
    ...(await core.listNamespacedService({namespace: NAMESPACE})).items
      .map(s => `service/${s.metadata!.name}`)
      .filter(n => n.endsWith('-canary')),
    ...(await core.listNamespacedPod({namespace: NAMESPACE, labelSelector: 'mlops.io/track=canary'})).items.map(
      p => `pod/${p.metadata!.name}`,
    ),
  ]
  const servedVersion = async () => {
    const {model} = JSON.parse((await mlops('status', '--json')).stdout) as {model: {name: string; version: string}}
    return `${model.name}@${model.version}`
  }

  before(async function () {
    this.timeout(45 * 60 * 1000)
    setup = await realNodeProject(NAMESPACE)
    ;({core, apps} = clientsFor(setup.cluster.kubeconfig))
    copyFileSync(fixture('iris_rf.onnx'), join(setup.project, 'model', 'rf.onnx'))
    // The SVC again (same answers) and the random forest (agrees on 0.919 of the reference rows), each with the reference set.
    for (const [file, version] of [
      ['model/model.onnx', 'same'],
      ['model/rf.onnx', 'rf'],
    ]) {
      const pushed = await mlops(
        'model',
        'push',
        file,
        '--name',
        'iris',
        '--labels',
        'model/labels.json',
        '--reference',
        'model/reference.csv',
        '--version',
        version,
      )
      expect(pushed.code, pushed.stderr).to.equal(0)
    }

    const first = await mlops('deploy', '--model', 'iris@1', '--set', 'autoscaling=false')
    expect(first.code, first.stderr).to.equal(0)
  })

  after(async () => {
    await setup?.stop()
  })

  it('a version that answers as the stable: 32 connections through the Service never fail, 50% → promoted; measured share within 5 points; nothing left', async () => {
    const loop = await ServiceLoop.start(setup.cluster.kubeconfig, 32)
    const result = await mlops(
      'deploy',
      '--model',
      'iris@same',
      '--canary',
      '--steps',
      '50',
      '--interval',
      '8s',
      '--set',
      'autoscaling=false',
      '--json',
    )
    const traffic = await loop.stop()
    expect(result.code, result.stderr).to.equal(0)
    expect(traffic.errors, traffic.errors.slice(0, 3).join('\n')).to.deep.equal([])
    expect(traffic.ok).to.be.greaterThan(100)
    const deployed = JSON.parse(result.stdout)
    expect(deployed.canary.outcome).to.equal('promoted')
    const [step] = deployed.canary.steps
    expect(step).to.include({percent: 50, canaryReplicas: 1, stableReplicas: 1, agreement: 1})
    expect(step.failed).to.deep.equal([])
    const podShare = step.canaryReplicas / (step.canaryReplicas + step.stableReplicas)
    expect(Math.abs(step.measuredShare - podShare), `measured ${step.measuredShare} against ${podShare}`).to.be.below(0.05)
    expect(step.canary.requests + step.stable.requests).to.be.greaterThan(100)
    expect(step.canary.errors + step.stable.errors).to.equal(0)
    expect(await servedVersion()).to.equal('iris@same')
    expect(await leftovers()).to.deep.equal([])
  })

  it('the random forest against the SVC: the agreement gate at 0.99 aborts it (exit 13, the readings said, the canary removed, the stable unchanged); at 0.90 it is promoted', async () => {
    const aborted = await mlops(
      'deploy',
      '--model',
      'iris@rf',
      '--canary',
      '--steps',
      '50',
      '--interval',
      '2s',
      '--min-agreement',
      '0.99',
      '--set',
      'autoscaling=false',
    )
    expect(aborted.code, aborted.stderr).to.equal(ExitCode.GATE_FAILED)
    expect(aborted.stderr).to.match(
      /^Error: canary iris@rf failed at 50%: agreement with the stable on the reference set 0\.919 < 0\.99; the canary was removed, iris serves on unchanged$/m,
    )
    expect(aborted.stdout).to.match(/^step 50%: 1 canary \+ 1 stable pods, .* \| agreement 0\.919 \| FAILED: agreement/m)
    expect(await leftovers()).to.deep.equal([])
    expect(await servedVersion()).to.equal('iris@same')
    const pods = await currentPods({core, apps}, NAMESPACE)
    expect(pods.map(pod => pod.metadata?.labels?.['mlops.io/track'])).to.deep.equal([undefined])

    const promoted = await mlops(
      'deploy',
      '--model',
      'iris@rf',
      '--canary',
      '--steps',
      '50',
      '--interval',
      '2s',
      '--min-agreement',
      '0.90',
      '--set',
      'autoscaling=false',
    )
    expect(promoted.code, promoted.stderr).to.equal(0)
    expect(await servedVersion()).to.equal('iris@rf')
    expect(await leftovers()).to.deep.equal([])
    // One revision per promotion: rollback goes back to the SVC.
    const back = await mlops('rollback')
    expect(back.code, back.stderr).to.equal(0)
    expect(await servedVersion()).to.equal('iris@same')
  })

  it('bad inputs: --steps 0,50 / 60,50 / abc, --min-agreement 2, --canary with --dry-run or --target local → exit 2; a first deploy with --canary → exit 3', async () => {
    for (const [args, message] of [
      [['--steps', '0,50'], /^Error: --steps "0,50": step 0 is not a percent between 0 and 100/],
      [['--steps', '60,50'], /^Error: --steps "60,50": steps must go up/],
      [['--steps', 'abc'], /^Error: --steps "abc": step NaN is not a percent/],
      [['--canary', '--min-agreement', '2'], /^Error: --min-agreement "2" is not a number from 0 to 1/],
      [['--canary', '--dry-run', 'client'], /--dry-run=client cannot also be provided when using --canary|cannot also be provided/],
      [['--canary', '--target', 'local'], /--canary/],
    ] as const) {
      const run = await mlops('deploy', '--model', 'iris@1', ...args)
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).to.equal(ExitCode.USAGE)
      expect(run.stderr).to.match(message)
    }

    const first = await mlops('deploy', '--model', 'iris@1', '--canary', '--namespace', 'e2e-canary-none', '--set', 'autoscaling=false')
    expect(first.code, first.stderr).to.equal(ExitCode.NOT_FOUND)
    expect(first.stderr).to.match(/^Error: deploy --canary needs a stable deployment e2e-canary-none\/iris to compare with/m)
  })
})
