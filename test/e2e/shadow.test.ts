import type {AppsV1Api, CoreV1Api, V1Pod} from '@kubernetes/client-node'
import {expect} from 'chai'
import {writeFileSync} from 'node:fs'
import {type Server, createServer} from 'node:http'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {waitFor} from '../env/ports.js'
import {startCli} from '../helpers/cli.js'
import {tempDir} from '../helpers/stores.js'
import {PredictLoop, currentPods, isReady, kubectl} from './cluster.js'
import type {RealNodeProject} from './environment.js'
import {type ProgressiveProject, progressiveProject} from './progressive.js'

const NAMESPACE = 'e2e-shadow'
const VIRGINICA = {data: [[6.3, 3.3, 6.0, 2.5]]}
const RESULTS = ['agree', 'disagree', 'error', 'timeout', 'dropped'] as const

/** A Prometheus sample's value in a /metrics text (0 when absent). */
function sample(text: string, name: string, labels: string): number {
  const line = text.split('\n').find(l => l.startsWith(`${name}{${labels}} `))
  return line ? Number(line.split(' ')[1]) : 0
}

describe('deploy --shadow on a real node: the stable mirrors, the candidate never changes an answer', function () {
  this.timeout(20 * 60 * 1000)
  let setup: RealNodeProject
  let core: CoreV1Api
  let apps: AppsV1Api
  const mlops = async (...args: string[]) => setup.mlops(...args)
  let project: ProgressiveProject
  const leftovers = async () => project.leftovers('shadow')
  const servedVersion = async () => project.servedVersion()

  const stablePod = async (): Promise<V1Pod> => {
    const pods = (await currentPods({core, apps}, NAMESPACE)).filter(isReady)
    expect(pods).to.have.length(1)
    return pods[0]
  }

  before(async function () {
    this.timeout(45 * 60 * 1000)
    project = await progressiveProject(NAMESPACE)
    ;({setup, core, apps} = project)
  })

  after(async () => {
    await setup?.stop()
  })

  it('a version that answers as the stable: mirrored requests agree, no request fails, promoted as one revision; nothing left', async () => {
    const loop = await PredictLoop.start(setup.cluster.kubeconfig, NAMESPACE, (await stablePod()).metadata!.name!, VIRGINICA)
    const result = await mlops(
      'deploy',
      '--model',
      'iris@same',
      '--shadow',
      '--shadow-sample',
      '1',
      '--interval',
      '6s',
      '--set',
      'autoscaling=false',
      '--json',
    )
    const traffic = await loop.stop()
    expect(result.code, result.stderr).to.equal(0)
    expect(traffic.errors, traffic.errors.slice(0, 3).join('\n')).to.deep.equal([])
    expect(new Set(traffic.answers).size).to.equal(1)
    const {canary} = JSON.parse(result.stdout)
    expect(canary.steps).to.deep.equal([])
    expect(canary.shadow).to.include({
      deployment: 'iris-shadow',
      replicas: 1,
      sample: 1,
      mirroringPods: 1,
      stablePods: 1,
      referenceAgreement: 1,
    })
    expect(canary.shadow.failed).to.deep.equal([])
    expect(canary.shadow.reading).to.include({disagree: 0, error: 0, timeout: 0, agreement: 1})
    expect(canary.shadow.reading.agree).to.be.greaterThan(5)
    expect(await servedVersion()).to.equal('iris@same')
    expect(await leftovers()).to.deep.equal([])
  })

  it('the random forest against the SVC at --min-agreement 0.99: exit 13 with the readings, the candidate removed, the stable unchanged', async () => {
    const aborted = await mlops(
      'deploy',
      '--model',
      'iris@rf',
      '--shadow',
      '--interval',
      '2s',
      '--min-agreement',
      '0.99',
      '--set',
      'autoscaling=false',
    )
    expect(aborted.code, aborted.stderr).to.equal(ExitCode.GATE_FAILED)
    expect(aborted.stderr).to.match(
      /^Error: shadow iris@rf failed: agreement with the stable on the reference set 0\.919 < 0\.99.*; the candidate was removed, iris serves on unchanged$/m,
    )
    expect(aborted.stdout).to.match(
      /^shadow: 1 candidate pod, 0\.1 of requests mirrored by 1 of 1 stable pods \| .* \| reference agreement 0\.919 \| FAILED/m,
    )
    expect(await leftovers()).to.deep.equal([])
    expect(await servedVersion()).to.equal('iris@same')
  })

  it('candidate down, slow (past the timeout), crash-looping: stable answers unchanged, none fails, each counted as an error or timeout; the next deploy removes the leftover', async () => {
    const pod = await stablePod()
    const loop = await PredictLoop.start(setup.cluster.kubeconfig, NAMESPACE, pod.metadata!.name!, VIRGINICA)
    const metrics = async () => (await fetch(`${loop.url}/metrics`)).text()
    const counts = async () => {
      const text = await metrics()
      return Object.fromEntries(RESULTS.map(result => [result, sample(text, 'mlops_shadow_requests_total', `result="${result}"`)]))
    }

    // What deploy --shadow writes, pointed at candidates that misbehave: the ConfigMap, then the pod nudged.
    let generation = 0
    const pointAt = async (urls: string[]) => {
      const file = join(tempDir('mlops-shadow-e2e-'), 'cm.json')
      writeFileSync(
        file,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: {name: 'iris-shadow', namespace: NAMESPACE},
          data: {'shadow.json': JSON.stringify({urls, sample: 1, timeoutMs: 500})},
        }),
      )
      kubectl(setup.cluster.kubeconfig, ['apply', '-f', file])
      kubectl(setup.cluster.kubeconfig, [
        '-n',
        NAMESPACE,
        'annotate',
        '--overwrite',
        `pod/${pod.metadata!.name}`,
        `mlops.io/shadow-config=test-${++generation}`,
      ])
    }

    /** Mirrors to `urls` until five `results` were counted: what it counted meanwhile. */
    const mirrorTo = async (urls: string[], results: Array<(typeof RESULTS)[number]>) => {
      const before = await counts()
      await pointAt(urls)
      const sum = (c: Record<string, number>) => results.reduce((total, result) => total + c[result], 0)
      await waitFor(async () => sum(await counts()) >= sum(before) + 5, `mirrored requests to ${urls.join(', ')} counted`, 90_000)
      const after = await counts()
      return Object.fromEntries(RESULTS.map(result => [result, after[result] - before[result]]))
    }

    let slow: Server | undefined
    try {
      // Down: nothing listens there.
      const down = await mirrorTo([`http://${setup.node.gateway}:1`], ['error'])
      expect(down.error).to.be.greaterThan(0)
      expect(down.agree).to.equal(0)

      // Slow: answers after 2 s, past the 500 ms timeout.
      slow = createServer((_request, response) => {
        setTimeout(() => response.end('{"prediction":"virginica"}'), 2000).unref()
      })
      await new Promise<void>(resolve => slow!.listen(0, setup.node.gateway, resolve))
      const {port} = slow.address() as {port: number}
      const timedOut = await mirrorTo([`http://${setup.node.gateway}:${port}`], ['timeout'])
      expect(timedOut.timeout).to.be.greaterThan(4)
      expect(timedOut.agree).to.equal(0)

      // Crash-looping: a pod of the API image that refuses its model (a wrong MODEL_SHA256) again and again.
      const live = await apps.readNamespacedDeployment({name: 'iris', namespace: NAMESPACE})
      const spec = structuredClone(live.spec!.template.spec!)
      const api = spec.containers.find(c => c.name === 'api')!
      api.env = [...(api.env ?? []), {name: 'MODEL_SHA256', value: '0'.repeat(64)}]
      delete api.readinessProbe
      delete api.startupProbe
      delete api.livenessProbe
      await core.createNamespacedPod({
        namespace: NAMESPACE,
        body: {metadata: {name: 'iris-crashing', labels: {'app.kubernetes.io/name': 'iris-crashing'}}, spec},
      })
      let crashing: V1Pod | undefined
      await waitFor(
        async () => {
          crashing = await core.readNamespacedPod({name: 'iris-crashing', namespace: NAMESPACE})
          return (
            (crashing.status?.containerStatuses?.find(s => s.name === 'api')?.restartCount ?? 0) >= 1 && Boolean(crashing.status?.podIP)
          )
        },
        'the crash-looping pod restarted once',
        120_000,
      )
      const crashed = await mirrorTo([`http://${crashing!.status!.podIP}:8000`], ['error', 'timeout'])
      expect(crashed.error + crashed.timeout).to.be.greaterThan(0)
      expect(crashed.agree).to.equal(0)

      const traffic = await loop.stop()
      expect(traffic.errors, traffic.errors.slice(0, 3).join('\n')).to.deep.equal([])
      expect(traffic.answers.length).to.be.greaterThan(20)
      expect(new Set(traffic.answers)).to.deep.equal(new Set(['{"prediction":"virginica"}']))

      // A shadow a killed deploy left (the stable still mirrors): the next deploy switches it off and removes it.
      const next = await mlops('deploy', '--model', 'iris@same', '--set', 'autoscaling=false')
      expect(next.code, next.stderr).to.equal(0)
      expect(next.stderr).to.include('removed the shadow of iris, left by an earlier deploy')
      expect(await leftovers()).to.deep.equal([])
      expect(
        sample((await (await fetch(`${loop.url}/metrics`).catch(() => undefined))?.text()) ?? '', 'mlops_shadow_workers', 'state="on"'),
      ).to.equal(0)
    } finally {
      await loop.stop()
      slow?.close()
      await core.deleteNamespacedPod({name: 'iris-crashing', namespace: NAMESPACE, gracePeriodSeconds: 0}).catch(() => undefined)
    }
  })

  it('Ctrl-C (SIGINT) while the stable mirrors: exit 130, the shadow switched off (every stable server stops mirroring) and its candidate removed, the stable unchanged', async () => {
    const {child, done} = startCli(
      ['deploy', '--model', 'iris@rf', '--shadow', '--interval', '120s', '--set', 'autoscaling=false'],
      setup.env,
      setup.project,
    )
    const pod = await stablePod()
    const port = pod.spec!.containers.find(c => c.name === 'api')!.ports!.find(p => p.name === 'http')!.containerPort
    const mirroring = async () =>
      sample(
        String(
          await core.connectGetNamespacedPodProxyWithPath({name: `${pod.metadata!.name}:${port}`, namespace: NAMESPACE, path: 'metrics'}),
        ),
        'mlops_shadow_workers',
        'state="on"',
      )
    await waitFor(async () => (await mirroring()) > 0, 'the stable mirroring', 180_000)
    child.kill('SIGINT')
    const run = await done
    expect(run.code, run.stderr).to.equal(ExitCode.INTERRUPTED)
    expect(run.stderr).to.match(
      /^Error: mlops deploy interrupted \(SIGINT\): the shadow was switched off and its candidate removed; iris serves on unchanged$/m,
    )
    expect(await leftovers()).to.deep.equal([])
    expect(await mirroring()).to.equal(0)
    expect(await servedVersion()).to.equal('iris@same')
  })

  it('bad inputs: --shadow-sample 0 / 2 / abc, --shadow-sample without --shadow, --shadow with --target local → exit 2; a first deploy with --shadow → exit 3', async () => {
    for (const [args, message] of [
      [['--shadow', '--shadow-sample', '0'], /^Error: --shadow-sample 0 mirrors nothing/],
      [['--shadow', '--shadow-sample', '2'], /^Error: --shadow-sample "2" is not a number from 0 to 1/],
      [['--shadow', '--shadow-sample', 'abc'], /^Error: --shadow-sample "abc" is not a number from 0 to 1/],
      [['--interval', '5s'], /^Error: --interval is a progressive-delivery setting: it needs --canary or --shadow/],
      [['--shadow', '--target', 'local'], /--shadow/],
    ] as const) {
      const run = await mlops('deploy', '--model', 'iris@1', ...args)
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).to.equal(ExitCode.USAGE)
      expect(run.stderr).to.match(message)
    }

    const first = await mlops('deploy', '--model', 'iris@1', '--shadow', '--namespace', 'e2e-shadow-none', '--set', 'autoscaling=false')
    expect(first.code, first.stderr).to.equal(ExitCode.NOT_FOUND)
    expect(first.stderr).to.match(/^Error: deploy --shadow needs a stable deployment e2e-shadow-none\/iris to mirror from/m)
  })
})
