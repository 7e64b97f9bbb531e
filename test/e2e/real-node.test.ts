import type {AppsV1Api, CoreV1Api} from '@kubernetes/client-node'
import {expect} from 'chai'
import {copyFileSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {parseDocument} from 'yaml'

import {ExitCode} from '../../src/errors.js'
import {dockerEngine, localRegistry} from '../env/docker.js'
import {FakeGcs} from '../env/fake-gcs.js'
import type {Cluster} from '../env/k8s.js'
import {type RealNode, nodeCtr, realNode, trustRegistry} from '../env/node.js'
import {runCli} from '../helpers/cli.js'
import {fixture, randomBytes, tempDir} from '../helpers/stores.js'
import {PredictLoop, clientsFor, isReady, kubectl, loaderSummary, podsOf} from './cluster.js'

const VIRGINICA = [[6.3, 3.3, 6, 2.5]]
const NAMESPACE = 'e2e'

describe('the model-load pattern on a real node (kubelet, containerd, runc): real pods', function () {
  this.timeout(10 * 60 * 1000)
  let cluster: Cluster
  let node: RealNode
  let gcs: FakeGcs
  let registry: {address: string; stop: () => void}
  let project: string
  let env: Record<string, string>
  let core: CoreV1Api
  let apps: AppsV1Api
  const bucket = 'e2e-models'
  const sha = {v1: '', v2: ''}

  const mlops = async (...args: string[]) => runCli(args, env, project)
  const deployment = async (name = 'iris', namespace = NAMESPACE) => apps.readNamespacedDeployment({name, namespace})
  const currentPods = async (namespace = NAMESPACE) => {
    const live = await deployment('iris', namespace)
    const sets = (await apps.listNamespacedReplicaSet({namespace, labelSelector: 'app.kubernetes.io/name=iris'})).items
    const newest = sets.find(rs => rs.metadata?.annotations?.['deployment.kubernetes.io/revision'] === live.metadata?.annotations?.['deployment.kubernetes.io/revision'])
    return (await podsOf(core, namespace, 'iris')).filter(pod => pod.metadata?.labels?.['pod-template-hash'] === newest?.metadata?.labels?.['pod-template-hash'])
  }

  before(async function () {
    // A fresh machine builds the node's binaries with the control plane's (minutes), and both images.
    this.timeout(45 * 60 * 1000)
    ;({cluster, node} = realNode())
    ;({core, apps} = clientsFor(cluster.kubeconfig))
    const {dockerHost} = dockerEngine()
    const password = randomBytes(12).toString('hex')
    registry = localRegistry('e2e-ci', password)
    trustRegistry(node, registry.address)
    // Pods reach the emulator on the node's bridge address; so does this machine.
    gcs = await FakeGcs.start({host: node.gateway})
    await gcs.createBucket(bucket)
    const workdir = tempDir('mlops-e2e-')
    env = {
      KUBECONFIG: cluster.kubeconfig, DOCKER_HOST: dockerHost, DOCKER_CONFIG: tempDir(),
      MLOPS_REGISTRY_USERNAME: 'e2e-ci', MLOPS_REGISTRY_PASSWORD: password,
    }
    const init = await runCli(['init', 'iris', '--yes', '--store', `gs://${bucket}/models`, '--image-repository', `${registry.address}/e2e`,
      '--namespace', NAMESPACE, '--replicas', '1'], env, workdir)
    expect(init.code, init.stderr).to.equal(0)
    project = join(workdir, 'iris')
    const config = parseDocument(readFileSync(join(project, 'mlops.yaml'), 'utf8'))
    config.setIn(['store'], {uri: `gs://${bucket}/models`, endpoint: gcs.url, timeout: 5})
    config.setIn(['image', 'tag'], 'e2e')
    config.setIn(['deploy', 'target'], 'k8s')
    config.setIn(['deploy', 'nodeSelector'], {'kubernetes.io/hostname': node.nodeName})
    config.setIn(['deploy', 'tolerations'], [{key: 'mlops.io/real-node', operator: 'Exists', effect: 'NoSchedule'}])
    config.setIn(['deploy', 'imagePullSecrets'], ['iris-registry'])
    writeFileSync(join(project, 'mlops.yaml'), config.toString())

    copyFileSync(fixture('iris_logreg.onnx'), join(project, 'model', 'logreg.onnx'))
    for (const [model, version] of [['model/model.onnx', 'v1'], ['model/logreg.onnx', 'v2']] as const) {
      const pushed = await mlops('model', 'push', model, '--name', 'iris', '--labels', 'model/labels.json', '--json')
      expect(pushed.code, pushed.stderr).to.equal(0)
      sha[version] = JSON.parse(pushed.stdout).sha256
    }

    for (const step of [['image', 'build'], ['image', 'push'], ['image', 'secret']]) {
      const result = await mlops(...step)
      expect(result.code, `${step.join(' ')}: ${result.stderr}`).to.equal(0)
    }
  })

  after(async () => {
    await gcs?.stop()
    registry?.stop()
  })

  it('deploys the scaffolded project\'s sample model from gs://: the loader initContainer loads it, the API container serves it', async () => {
    const result = await mlops('deploy', '--model', 'iris@1')
    expect(result.code, result.stderr).to.equal(0)
    expect(result.stdout).to.contain(`deployment ${NAMESPACE}/iris rolled out: iris@1`)
    const pods = await currentPods()
    expect(pods).to.have.length(1)
    const [pod] = pods
    expect(pod.spec?.nodeName).to.equal(node.nodeName)
    expect(isReady(pod)).to.equal(true)
    const loader = pod.status!.initContainerStatuses![0]
    expect(loader.state?.terminated?.exitCode).to.equal(0)
    // The summary reached Kubernetes through /dev/termination-log: the rendered args pass no --termination-log.
    expect(pod.spec!.initContainers![0].args).to.not.include('--termination-log')
    expect(loaderSummary(pod)).to.include({ok: true, version: '1', sha256: sha.v1})
    // Images were pulled from the registry that needs credentials, by digest.
    for (const container of [...pod.spec!.initContainers!, ...pod.spec!.containers]) expect(container.image).to.match(new RegExp(`^${registry.address}/e2e/(loader|api)@sha256:[0-9a-f]{64}$`))
  })

  it('every log line of both containers is one JSON object (no ONNX Runtime telemetry warning in between)', async () => {
    const [pod] = await currentPods()
    for (const container of ['model-loader', 'api']) {
      const log = await core.readNamespacedPodLog({name: pod.metadata!.name!, namespace: NAMESPACE, container})
      const lines = log.trim().split('\n')
      expect(lines.length, container).to.be.greaterThan(0)
      for (const line of lines) expect(() => JSON.parse(line), `${container}: ${line}`).to.not.throw()
    }
  })

  it('predict --target k8s --expect virginica answers through a real port-forward', async () => {
    const result = await mlops('predict', '--data', JSON.stringify(VIRGINICA), '--expect', 'virginica')
    expect(result.code, result.stderr).to.equal(0)
    expect(result.stdout).to.contain('virginica')
  })

  it('status shows the sha256 that the running container reports at /metadata', async () => {
    const result = await mlops('status', '--json')
    expect(result.code, result.stderr).to.equal(0)
    const status = JSON.parse(result.stdout)
    expect(status.model).to.include({version: '1', sha256: sha.v1})
    expect(status.serving).to.have.length(1)
    expect(status.serving[0]).to.include({sha256: sha.v1, version: '1', matches: true, ready: true})
    const text = await mlops('status')
    expect(text.stdout).to.match(new RegExp(`serving +iris-[a-z0-9-]+: iris@1 sha256:${sha.v1.slice(0, 12)}$`, 'm'))
  })

  it('a second version, then rollback: the answers change, then change back', async () => {
    const answer = async () => {
      const result = await mlops('predict', '--endpoint', '/predict', '--data', JSON.stringify(VIRGINICA), '--json')
      expect(result.code, result.stderr).to.equal(0)
      return JSON.stringify(JSON.parse(result.stdout).response)
    }

    const first = await answer()
    const second = await mlops('deploy', '--model', 'iris@2')
    expect(second.code, second.stderr).to.equal(0)
    const fromV2 = await answer()
    expect(fromV2).to.not.equal(first)
    expect(JSON.parse((await mlops('status', '--json')).stdout).serving[0]).to.include({sha256: sha.v2, matches: true})
    const back = await mlops('rollback')
    expect(back.code, back.stderr).to.equal(0)
    expect(await answer()).to.equal(first)
    expect(JSON.parse((await mlops('status', '--json')).stdout).serving[0]).to.include({sha256: sha.v1, matches: true})
  })
})
