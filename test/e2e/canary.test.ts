import type {AppsV1Api, CoreV1Api} from '@kubernetes/client-node'
import {expect} from 'chai'
import {type ChildProcess, spawn} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {parseDocument} from 'yaml'

import {ExitCode} from '../../src/errors.js'
import {API_PORT_NAME, CONTAINERS} from '../../src/pod/contract.js'
import {waitFor} from '../env/ports.js'
import {startCli} from '../helpers/cli.js'
import {writeNegativeFailingOnnx} from '../helpers/failing-model.js'
import {KUBECTL, currentPods} from './cluster.js'
import type {RealNodeProject} from './environment.js'
import {type ProgressiveProject, progressiveProject} from './progressive.js'

const NAMESPACE = 'e2e-canary'
/** A request's row and the label the SVC answers for it. */
interface LoopRow {
  row: number[]
  label: string
}
const VIRGINICA: LoopRow = {row: [6.3, 3.3, 6.0, 2.5], label: 'virginica'}
const SETOSA: LoopRow = {row: [5.1, 3.5, 1.4, 0.2], label: 'setosa'}
/** A setosa with a negative petal width: the SVC still answers it; the negative-fails version throws on it. */
const NEGATIVE_PETAL_WIDTH: LoopRow = {row: [5.1, 3.5, 1.4, -0.2], label: 'setosa'}

/**
 * Requests through the Service, as users send them: `kubectl proxy`, then the API server's service
 * proxy, which picks one of the Service's ready endpoints per request (both tracks' pods). Each
 * connection sends the rows in turn; an answer other than 200 with the row's label is a failure,
 * recorded with its row.
 */
class ServiceLoop {
  private stopped = false
  private readonly loops: Promise<void>[] = []
  ok = 0
  readonly errors: string[] = []

  private constructor(
    private readonly proxy: ChildProcess,
    private readonly url: string,
    private readonly rows: LoopRow[],
  ) {}

  static async start(kubeconfig: string, connections: number, rows: LoopRow[] = [VIRGINICA]): Promise<ServiceLoop> {
    const proxy = spawn(KUBECTL, ['--kubeconfig', kubeconfig, 'proxy', '--port=0'], {stdio: ['ignore', 'pipe', 'pipe']})
    let output = ''
    proxy.stdout.on('data', chunk => {
      output += chunk
    })
    await waitFor(async () => /Starting to serve on 127\.0\.0\.1:\d+/.test(output), 'kubectl proxy', 15_000)
    const port = /127\.0\.0\.1:(\d+)/.exec(output)![1]
    const loop = new ServiceLoop(
      proxy,
      `http://127.0.0.1:${port}/api/v1/namespaces/${NAMESPACE}/services/iris:http/proxy/predict/label`,
      rows,
    )
    // Each connection starts at another row: at any moment all rows are in flight.
    for (let i = 0; i < connections; i++) loop.loops.push(loop.run(i))
    return loop
  }

  async stop(): Promise<{ok: number; errors: string[]}> {
    this.stopped = true
    await Promise.all(this.loops)
    this.proxy.kill('SIGTERM')
    return {ok: this.ok, errors: this.errors}
  }

  private async run(first: number): Promise<void> {
    for (let i = first; !this.stopped; i++) {
      const {row, label} = this.rows[i % this.rows.length]
      try {
        const response = await fetch(this.url, {
          method: 'POST',
          headers: {'content-type': 'application/json'},
          body: JSON.stringify({data: [row]}),
          signal: AbortSignal.timeout(10_000),
        })
        const text = await response.text()
        if (response.ok && text === JSON.stringify({prediction: label})) this.ok++
        else this.errors.push(`${JSON.stringify(row)} → HTTP ${response.status} ${text.slice(0, 300)}`)
      } catch (error) {
        this.errors.push(`${JSON.stringify(row)} → ${(error as Error).message}`)
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
  let project: ProgressiveProject
  const leftovers = async () => project.leftovers('canary')
  /**
   * The stable's pods (name and API container restarts: the same pods, counting from where they
   * were) and their /predict/label answers by HTTP status, summed from each pod's /metrics read
   * through the API server's pod proxy.
   */
  const stableAnswers = async () => {
    const pods = (await currentPods({core, apps}, NAMESPACE)).filter(pod => !pod.metadata?.labels?.['mlops.io/track'])
    const byStatus: Record<string, number> = {}
    for (const pod of pods) {
      const api = pod.spec!.containers.find(container => container.name === CONTAINERS.api)!
      const port = api.ports!.find(p => p.name === API_PORT_NAME)!.containerPort
      const metrics = String(
        await core.connectGetNamespacedPodProxyWithPath({name: `${pod.metadata!.name}:${port}`, namespace: NAMESPACE, path: 'metrics'}),
      )
      for (const [, status, count] of metrics.matchAll(
        /^mlops_http_requests_total\{route="\/predict\/label",method="POST",status="(\d+)"\} (\d+)$/gm,
      ))
        byStatus[status] = (byStatus[status] ?? 0) + Number(count)
    }

    return {
      pods: pods.map(
        pod => `${pod.metadata!.name} restarts ${pod.status?.containerStatuses?.find(c => c.name === CONTAINERS.api)?.restartCount}`,
      ),
      byStatus,
    }
  }

  const servedVersion = async () => project.servedVersion()
  const canaryReady = async () =>
    ((await apps.readNamespacedDeployment({name: 'iris-canary', namespace: NAMESPACE}).catch(() => undefined))?.status?.readyReplicas ??
      0) > 0
  /**
   * deploy --canary of the version not served, one step of 50% watched for `interval`, in the
   * background: returned once the canary is Ready and the step's first reads are done (3 s on),
   * so that the run is inside its window.
   */
  const canaryInItsWindow = async (interval: string) => {
    const before = await servedVersion()
    const next = before === 'iris@same' ? 'iris@rf' : 'iris@same'
    const args = ['deploy', '--model', next, '--canary', '--steps', '50', '--interval', interval, '--min-agreement', '0.9']
    const run = startCli([...args, '--set', 'autoscaling=false'], setup.env, setup.project)
    try {
      await waitFor(canaryReady, 'the canary ready', 180_000)
      await sleep(3000)
    } catch (error) {
      run.child.kill('SIGINT')
      throw error
    }
    return {before, next, ...run}
  }

  before(async function () {
    this.timeout(45 * 60 * 1000)
    project = await progressiveProject(NAMESPACE)
    ;({setup, core, apps} = project)
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

  it('a version that fails on a negative petal width ([5.1, 3.5, 1.4, -0.2] → 500): the error-rate gate aborts it at the first step (exit 13); the stable failed none; nothing left', async () => {
    // The SVC behind a guard that throws in onnxruntime on a negative value: the same answers on the reference set.
    writeNegativeFailingOnnx(join(setup.project, 'model', 'model.onnx'), join(setup.project, 'model', 'negative-fails.onnx'))
    await project.pushVersion('model/negative-fails.onnx', 'negative-fails')
    const stable = await mlops('deploy', '--model', 'iris@same', '--set', 'autoscaling=false')
    expect(stable.code, stable.stderr).to.equal(0)
    // The rollback before this brought back a ReplicaSet whose earlier pod may still be terminating
    // (its preStop grace): deploy --canary reads that pod's /metrics too, which answers 503, and
    // fails with exit 7 (canary.ts reads every pod of the stable's ReplicaSet; reported, not
    // fixed here). Start from a settled stable.
    await waitFor(
      async () => (await core.listNamespacedPod({namespace: NAMESPACE})).items.every(pod => !pod.metadata?.deletionTimestamp),
      'the terminating pods of earlier revisions to go',
      60_000,
    )

    // One row in four negative, from 32 connections through the Service: both tracks get each row.
    const before = await stableAnswers()
    const loop = await ServiceLoop.start(setup.cluster.kubeconfig, 32, [VIRGINICA, SETOSA, VIRGINICA, NEGATIVE_PETAL_WIDTH])
    const aborted = await mlops(
      'deploy',
      '--model',
      'iris@negative-fails',
      '--canary',
      '--steps',
      '10,50',
      '--interval',
      '10s',
      '--set',
      'autoscaling=false',
    )
    const traffic = await loop.stop()
    const after = await stableAnswers()

    expect(aborted.code, aborted.stderr).to.equal(ExitCode.GATE_FAILED)
    expect(aborted.stderr).to.match(
      /^Error: canary iris@negative-fails failed at 10%: error rate [\d.]+ \(\d+ of \d+\) against the stable's 0: more than 0\.01 above(; p99 .*)?; the canary was removed, iris serves on unchanged$/m,
    )
    // Aborted within one interval: the first step's reading failed, no second step was started.
    const steps = [...aborted.stdout.matchAll(/^step .*$/gm)].map(match => match[0])
    expect(steps, aborted.stdout).to.have.length(1)
    expect(steps[0]).to.match(/^step 10%: 1 canary \+ 1 stable pods, .* \| agreement 1 \| FAILED: error rate /)
    const [, canaryErrors, stableErrors] = /canary \d+ requests, (\d+) errors.*; stable \d+ requests, (\d+) errors/.exec(steps[0])!
    expect(Number(canaryErrors)).to.be.greaterThan(0)
    expect(Number(stableErrors)).to.equal(0)

    // Every failed request was the negative row, failed by onnxruntime in the guard: only the canary has it.
    expect(traffic.errors.length).to.be.greaterThan(0)
    for (const error of traffic.errors)
      expect(error).to.match(
        /^\[5\.1,3\.5,1\.4,-0\.2\] → HTTP 500 \{"error":"inference failed: .*'guard_Gather'.*indices element out of data bounds, idx=1000/,
      )
    expect(traffic.ok).to.be.greaterThan(100)
    // The stable's own counters, over the whole loop: the same pods, every request it got answered 200.
    expect(after.pods).to.deep.equal(before.pods)
    const answered = Object.fromEntries(
      Object.entries(after.byStatus)
        .map(([status, count]) => [status, count - (before.byStatus[status] ?? 0)])
        .filter(([, count]) => count !== 0),
    )
    expect(Object.keys(answered), JSON.stringify(answered)).to.deep.equal(['200'])
    expect(answered['200']).to.be.greaterThan(50)

    expect(await leftovers()).to.deep.equal([])
    expect(await servedVersion()).to.equal('iris@same')
    const pods = await currentPods({core, apps}, NAMESPACE)
    expect(pods.map(pod => pod.metadata?.labels?.['mlops.io/track'])).to.deep.equal([undefined])
  })

  it('--pause: the random forest stops at 30% (status shows it; another deploy: exit 4), promote goes on to 60% and pauses, promote --full promotes; no request fails; nothing left', async () => {
    const loop = await ServiceLoop.start(setup.cluster.kubeconfig, 8)
    const json = (run: {stdout: string}) =>
      JSON.parse(run.stdout) as {canary: {outcome: string; pausedAt: number | null; steps: Array<{percent: number}>}}
    const paused = await mlops(
      'deploy',
      '--model',
      'iris@rf',
      '--canary',
      '--steps',
      '30,60',
      '--interval',
      '3s',
      '--pause',
      '--min-agreement',
      '0.9',
      '--set',
      'autoscaling=false',
      '--json',
    )
    expect(paused.code, paused.stderr).to.equal(0)
    expect(json(paused).canary).to.include({outcome: 'paused', pausedAt: 30})
    const status = await mlops('status')
    expect(status.stdout).to.match(
      /^ {2}canary +iris-canary: iris@rf, 1\/1 ready, paused at 30% \(mlops promote \/ mlops abort\); last gate: step 30%: .*passed$/m,
    )
    expect(await servedVersion()).to.equal('iris@same')

    const refused = await mlops('deploy', '--model', 'iris@same', '--set', 'autoscaling=false')
    expect(refused.code, refused.stderr).to.equal(ExitCode.CONFLICT)
    expect(refused.stderr).to.match(/^Error: a canary of iris@rf is paused beside e2e-canary\/iris: promote or abort it first$/m)

    const next = await mlops('promote', '--json')
    expect(next.code, next.stderr).to.equal(0)
    expect(json(next).canary).to.include({outcome: 'paused', pausedAt: 60})
    expect(json(next).canary.steps.map(step => step.percent)).to.deep.equal([60])

    const full = await mlops('promote', '--full', '--json')
    expect(full.code, full.stderr).to.equal(0)
    expect(json(full).canary).to.include({outcome: 'promoted', pausedAt: null})
    const traffic = await loop.stop()
    expect(traffic.errors, traffic.errors.slice(0, 3).join('\n')).to.deep.equal([])
    expect(await servedVersion()).to.equal('iris@rf')
    expect(await leftovers()).to.deep.equal([])

    const none = await mlops('promote')
    expect(none.code, none.stderr).to.equal(ExitCode.NOT_FOUND)
    expect(none.stderr).to.match(/^Error: no canary beside e2e-canary\/iris to promote$/m)
  })

  it('a canary removed during its step (its Deployment deleted, as a person might): no traffic reaches it, so none fails; the step fails on its missing pods (exit 13); nothing left', async () => {
    const {before, next, child, done} = await canaryInItsWindow('15s')
    try {
      await apps.deleteNamespacedDeployment({name: 'iris-canary', namespace: NAMESPACE, propagationPolicy: 'Foreground'})
    } catch (error) {
      child.kill('SIGINT')
      throw error
    }
    const run = await done
    expect(run.code, run.stderr).to.equal(ExitCode.GATE_FAILED)
    expect(run.stderr).to.match(
      new RegExp(
        `^Error: canary ${next} failed at 50%: 0 of 1 canary pods serving at the end of the step \\(crashed, restarting or removed\\); the canary was removed, iris serves on unchanged$`,
        'm',
      ),
    )
    expect(await servedVersion()).to.equal(before)
    expect(await leftovers()).to.deep.equal([])
  })

  it("a deploy --canary suspended past its lease (kill -STOP, a laptop asleep) while another deploy takes over: resumed, exit 4, it changes nothing more; the other's release stands", async () => {
    const {before, child, done} = await canaryInItsWindow('20s')
    try {
      child.kill('SIGSTOP')
      // Another deploy (a CI job) gets the lease once it lapsed, 30 s after the last renewal at most.
      await sleep(31_000)
      const other = await mlops('deploy', '--model', before, '--set', 'autoscaling=false')
      expect(other.code, other.stderr).to.equal(0)
      expect(other.stderr).to.match(/^removed the canary of iris, left by an earlier deploy$/m)
    } finally {
      child.kill('SIGCONT')
    }
    const run = await done
    expect(run.code, run.stderr).to.equal(ExitCode.CONFLICT)
    expect(run.stderr).to.match(
      /^Error: lost lease e2e-canary\/iris-mlops-lock to another run: this run was not renewing it for 30s \(suspended\?\) and changes nothing more$/m,
    )
    expect(run.stderr).to.not.match(/promoting|\n\s+at /)
    expect(await servedVersion()).to.equal(before)
    expect(await leftovers()).to.deep.equal([])
  })

  it('deploy.strategy canary in mlops.yaml: a plain deploy runs the canary (deploy.canary steps), promotes; --all-at-once skips it, and a re-run; a first deploy goes all at once', async () => {
    const file = join(setup.project, 'mlops.yaml')
    const saved = readFileSync(file, 'utf8')
    const config = parseDocument(saved)
    config.setIn(['deploy', 'strategy'], 'canary')
    config.setIn(['deploy', 'canary'], {steps: [50], intervalSeconds: 2, minAgreement: 0.9})
    writeFileSync(file, config.toString())
    try {
      const before = await servedVersion()
      const next = before === 'iris@same' ? 'iris@rf' : 'iris@same'
      const canaried = await mlops('deploy', '--model', next, '--set', 'autoscaling=false', '--json')
      expect(canaried.code, canaried.stderr).to.equal(0)
      const result = JSON.parse(canaried.stdout)
      expect(result.canary.outcome).to.equal('promoted')
      expect(result.canary.steps.map((step: {percent: number}) => step.percent)).to.deep.equal([50])
      expect(await servedVersion()).to.equal(next)
      expect(await leftovers()).to.deep.equal([])

      const hotfix = await mlops('deploy', '--model', before, '--set', 'autoscaling=false', '--all-at-once', '--json')
      expect(hotfix.code, hotfix.stderr).to.equal(0)
      expect(JSON.parse(hotfix.stdout).canary).to.equal(null)
      expect(await servedVersion()).to.equal(before)

      // A re-run of the live release (a CI job run again): nothing to canary, so none is run, and
      // the note saying why reaches stderr under --json too.
      const again = await mlops('deploy', '--model', before, '--set', 'autoscaling=false', '--json')
      expect(again.code, again.stderr).to.equal(0)
      expect(again.stderr).to.match(
        /^e2e-canary\/iris already runs this release \(its pod template is unchanged\): no canary or shadow to run$/m,
      )
      const rerun = JSON.parse(again.stdout)
      expect(rerun.canary).to.equal(null)
      expect(rerun.applied.find((object: {kind: string}) => object.kind === 'Deployment').result).to.equal('unchanged')
      expect(await leftovers()).to.deep.equal([])

      // A values file per environment chooses too: -f staging.yaml (strategy: all-at-once) over mlops.yaml's canary.
      writeFileSync(join(setup.project, 'staging.yaml'), 'strategy: all-at-once\n')
      const staging = await mlops('deploy', '--model', next, '-f', 'staging.yaml', '--set', 'autoscaling=false', '--json')
      expect(staging.code, staging.stderr).to.equal(0)
      expect(JSON.parse(staging.stdout).canary).to.equal(null)
      expect(await servedVersion()).to.equal(next)

      // A new namespace: the registry's pull Secret first (it makes the namespace), as a user would.
      expect((await mlops('image', 'secret', '--namespace', 'e2e-canary-first')).code).to.equal(0)
      const first = await mlops('deploy', '--model', 'iris@1', '--namespace', 'e2e-canary-first', '--set', 'autoscaling=false')
      expect(first.code, first.stderr).to.equal(0)
      expect(first.stderr).to.match(
        /^deploy\.strategy: e2e-canary-first\/iris has no stable version yet to compare with; deploying iris@1 all at once$/m,
      )
      expect((await mlops('delete', '--yes', '--namespace', 'e2e-canary-first')).code).to.equal(0)

      const both = await mlops('deploy', '--model', before, '--all-at-once', '--canary')
      expect(both.code).to.equal(ExitCode.USAGE)
      expect(both.stderr).to.match(/--all-at-once|--canary/)
    } finally {
      writeFileSync(file, saved)
    }
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
