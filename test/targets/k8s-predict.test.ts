import {AppsV1Api, KubeConfig, KubernetesObjectApi, RbacAuthorizationV1Api} from '@kubernetes/client-node'
import {expect} from 'chai'
import type {ChildProcess} from 'node:child_process'
import {connect} from 'node:net'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {kubeClients} from '../../src/targets/k8s/client.js'
import {forwardPort, readyPod} from '../../src/targets/k8s/port-forward.js'
import {inspectModelFile} from '../../src/store/model-file.js'
import {type Cluster, kubeCluster} from '../env/k8s.js'
import {freePort} from '../env/ports.js'
import {runCli, startIrisServer} from '../helpers/cli.js'
import {type StoreFixture, fixture, makeStore, tempDir, writeK8sProject} from '../helpers/stores.js'
import {restoreEnv} from '../helpers/env.js'

const ROW = '[[6.3,3.3,6.0,2.5]]'

/**
 * kwok has no kubelet, but it serves the node's kubelet API: a kwok
 * ClusterPortForward sends a pod's port to an address on this machine. Here
 * that is a real `mlops serve` with the iris model, so a request goes
 * mlops predict → local listener → WebSocket through kube-apiserver → kwok →
 * mlops serve, and the answer comes back the same way.
 */
describe('mlops predict --target k8s through a port-forward on a real control plane', function () {
  this.timeout(10 * 60 * 1000)
  let cluster: Cluster
  let store: StoreFixture
  let project: string
  let server: ChildProcess
  let serveUrl: string
  let objects: KubernetesObjectApi
  let env: Record<string, string>

  /** Every pod of `namespace` (whatever its name, as ReplicaSets make them) forwards every port to `port` on 127.0.0.1. */
  async function forwardNamespace(namespace: string, port: number): Promise<void> {
    await objects.create({
      apiVersion: 'kwok.x-k8s.io/v1alpha1',
      kind: 'ClusterPortForward',
      metadata: {name: `predict-${namespace}`},
      spec: {selector: {matchNamespaces: [namespace]}, forwards: [{target: {address: '127.0.0.1', port}}]},
    } as never)
  }

  async function deploy(namespace: string, ...args: string[]): Promise<void> {
    const run = await runCli(
      ['deploy', '--config', join(project, 'mlops.yaml'), '--model', 'iris@1', '--namespace', namespace, ...args],
      env,
    )
    expect(run.code, run.stderr).to.equal(0)
  }

  const predict = (...args: string[]) => runCli(['predict', '--config', join(project, 'mlops.yaml'), '--target', 'k8s', ...args], env)

  async function servedRequests(): Promise<number> {
    const text = await (await fetch(`${serveUrl}/metrics`)).text()
    return [...text.matchAll(/^mlops_http_requests_total\{[^}]*route="\/predict\/label"[^}]*\} (\d+)/gm)].reduce(
      (sum, m) => sum + Number(m[1]),
      0,
    )
  }

  before(async () => {
    cluster = kubeCluster()
    env = {KUBECONFIG: cluster.kubeconfig}
    const config = new KubeConfig()
    config.loadFromFile(cluster.kubeconfig)
    objects = KubernetesObjectApi.makeApiClient(config)
    store = await makeStore('gcs')
    await store.store.push({
      model: await inspectModelFile(fixture('iris_svc.onnx'), fixture('iris_labels.json')),
      name: 'iris',
      metadata: {},
      workDir: tempDir(),
    })
    project = tempDir()
    writeK8sProject(project, store, 'predict')
    const started = await startIrisServer()
    serveUrl = started.url
    server = started.server
    const {port} = started
    await deploy('predict')
    await forwardNamespace('predict', port)
  })

  after(() => {
    server?.kill('SIGTERM')
  })

  it('sends the row to a ready pod of the deployment and prints the answer (--expect passes); the pod is named', async () => {
    const before = await servedRequests()
    const run = await predict('--data', ROW, '--expect', 'virginica')
    expect(run.code, run.stderr).to.equal(0)
    expect(run.stdout.trim()).to.equal('{"prediction":"virginica"}')
    expect(run.stderr).to.match(/^forwarding http:\/\/127\.0\.0\.1:\d+ -> pod predict\/iris-[a-z0-9]+-[a-z0-9]+:8000$/m)
    expect(await servedRequests()).to.equal(before + 1)
    const json = await predict('--data', ROW, '--json')
    const apps = new KubeConfig()
    apps.loadFromFile(cluster.kubeconfig)
    const pods = (await apps.makeApiClient(AppsV1Api).readNamespacedDeployment({name: 'iris', namespace: 'predict'})).status?.readyReplicas
    expect(pods).to.equal(2)
    expect(JSON.parse(json.stdout))
      .to.deep.include({response: {prediction: 'virginica'}})
      .and.to.have.property('pod')
      .that.matches(/^iris-/)
  })

  it('--protocol v2 through the port-forward: the metadata call and the inference each get a tunnel', async () => {
    const run = await predict('--protocol', 'v2', '--data', '[6.3,3.3,6.0,2.5]', '--json')
    expect(run.code, run.stderr).to.equal(0)
    expect(JSON.parse(run.stdout).response.outputs[0].data).to.deep.equal([2])
  })

  it('-n 300 --concurrency 8 goes through the port-forward: figures, and the server counted every request', async () => {
    const before = await servedRequests()
    const run = await predict('--data', ROW, '-n', '300', '--concurrency', '8', '--json')
    expect(run.code, run.stderr).to.equal(0)
    const {load} = JSON.parse(run.stdout)
    expect(load).to.include({requests: 300, errors: 0})
    expect(load.p50).to.be.at.most(load.p99)
    expect(await servedRequests()).to.equal(before + 300)
  })

  it('the local listener: one WebSocket per connection, closed with the command (nothing left listening)', async () => {
    const saved = process.env.KUBECONFIG
    process.env.KUBECONFIG = cluster.kubeconfig
    try {
      const clients = kubeClients()
      const {pod, port} = await readyPod(clients, await clients.apps.readNamespacedDeployment({name: 'iris', namespace: 'predict'}))
      const forwarding = await forwardPort(clients, {namespace: 'predict', pod, port})
      const answers = await Promise.all([1, 2, 3].map(async () => (await fetch(`${forwarding.url}/ready`)).status))
      expect(answers).to.deep.equal([200, 200, 200])
      expect(forwarding.connections).to.equal(3)
      expect(forwarding.lastError).to.equal(undefined)
      await forwarding.close()
      const refused = await new Promise<string>(resolve => {
        const socket = connect(Number(new URL(forwarding.url).port), '127.0.0.1')
        socket.on('connect', () => resolve('connected'))
        socket.on('error', error => resolve((error as NodeJS.ErrnoException).code ?? 'error'))
      })
      expect(refused).to.equal('ECONNREFUSED')
    } finally {
      restoreEnv('KUBECONFIG', saved)
    }
  })

  it('bad input: a namespace with no such deployment → exit 3', async () => {
    const run = await predict('--namespace', 'nothing-here', '--data', ROW)
    expect(run.code).to.equal(ExitCode.NOT_FOUND)
    expect(run.stderr).to.match(/^Error: deployment nothing-here\/iris does not exist\n/)
  })

  it('bad input: a deployment with no ready pod (replicas=0) → exit 7 with a hint', async () => {
    await deploy('predict-empty', '--set', 'replicas=0')
    const run = await predict('--namespace', 'predict-empty', '--data', ROW)
    expect(run.code).to.equal(ExitCode.UNAVAILABLE)
    expect(run.stderr).to.match(
      /^Error: deployment predict-empty\/iris has no ready pod \(0 pods, none ready\)\nHint: see why with mlops status/,
    )
  })

  it("bad input: nothing listens on the pod's port → exit 7 with the node's message, no stack trace", async () => {
    await deploy('predict-nobody')
    await forwardNamespace('predict-nobody', await freePort())
    const run = await predict('--namespace', 'predict-nobody', '--data', ROW)
    expect(run.code).to.equal(ExitCode.UNAVAILABLE)
    expect(run.stderr).to.match(/^Error: port-forward to predict-nobody\/iris-[a-z0-9-]+:8000: .*(connection refused|ECONNREFUSED)/im)
    expect(run.stderr).to.not.match(/\n\s+at /)
  })

  it('bad input: a user who may read the deployment and pods but not create pods/portforward → exit 6', async () => {
    const config = new KubeConfig()
    config.loadFromFile(cluster.kubeconfig)
    const rbac = config.makeApiClient(RbacAuthorizationV1Api)
    await rbac.createNamespacedRole({
      namespace: 'predict',
      body: {
        metadata: {name: 'read-pods'},
        rules: [
          {apiGroups: [''], resources: ['pods'], verbs: ['get', 'list']},
          {apiGroups: ['apps'], resources: ['replicasets'], verbs: ['get', 'list']},
        ],
      },
    })
    await rbac.createNamespacedRoleBinding({
      namespace: 'predict',
      body: {
        metadata: {name: 'read-pods'},
        roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-pods'},
        subjects: [{apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: cluster.restrictedUser}],
      },
    })
    const run = await runCli(['predict', '--config', join(project, 'mlops.yaml'), '--target', 'k8s', '--data', ROW], {
      KUBECONFIG: cluster.restrictedKubeconfig,
    })
    expect(run.code).to.equal(ExitCode.PERMISSION)
    expect(run.stderr).to.match(
      /^Error: port-forward to predict\/iris-[a-z0-9-]+:8000: the API server refused \(403\)\nHint: port-forward needs the create verb on pods\/portforward/m,
    )
    // Without even the pods list right: the same exit code, the API server's own words.
    const noPods = await runCli(
      ['predict', '--config', join(project, 'mlops.yaml'), '--target', 'k8s', '--namespace', 'predict-empty', '--data', ROW],
      {KUBECONFIG: cluster.restrictedKubeconfig},
    )
    expect(noPods.code).to.equal(ExitCode.PERMISSION)
    expect(noPods.stderr).to.match(/^Error: listing the pods of deployment predict-empty\/iris: .*forbidden/)
  })
})
