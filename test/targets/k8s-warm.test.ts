import {AppsV1Api, CoreV1Api, KubeConfig, type V1Pod} from '@kubernetes/client-node'
import {expect} from 'chai'

import {ExitCode} from '../../src/errors.js'
import {inspectModelFile} from '../../src/store/model-file.js'
import {type Cluster, kubeCluster} from '../env/k8s.js'
import {waitFor} from '../env/ports.js'
import {runCli, startCli} from '../helpers/cli.js'
import {createTestNode} from '../helpers/kube.js'
import {type StoreFixture, fixture, makeStore, tempDir, writeK8sProject} from '../helpers/stores.js'

/**
 * mlops model warm and deploy --prewarm against a real control plane: the DaemonSet on kwok's
 * node (kwok marks its pods ready, so nothing is pulled: test/e2e/warm.test.ts pulls for real),
 * and on a node with no kubelet, where a pod stays pending until the test reports what a
 * kubelet would (a pull that failed), or the CLI is stopped.
 */
const NAMESPACE = 'warm'
const LABEL = 'mlops.test/warm'
const NO_KUBELET = 'warm-no-kubelet'
/** The node with no kubelet: selected by its label; every taint tolerated (it is unschedulable and tainted, and never Ready). */
const ON_NO_KUBELET = ['--set', `nodeSelector={${LABEL}: ${NO_KUBELET}}`, '--set', 'tolerations=[{operator: Exists}]']

describe('mlops model warm and deploy --prewarm on a real Kubernetes control plane', function () {
  this.timeout(5 * 60 * 1000)
  let cluster: Cluster
  let store: StoreFixture
  let project: string
  let apps: AppsV1Api
  let core: CoreV1Api

  const env = () => ({KUBECONFIG: cluster.kubeconfig})
  const mlops = async (...args: string[]) => runCli(args, env(), project)
  const warmPods = async () => (await core.listNamespacedPod({namespace: NAMESPACE, labelSelector: 'mlops.io/warm=iris'})).items
  const leftovers = async () => [
    ...(await apps.listNamespacedDaemonSet({namespace: NAMESPACE})).items.map(d => `daemonset/${d.metadata!.name}`),
    ...(await warmPods()).map(p => `pod/${p.metadata!.name}`),
  ]

  before(async () => {
    cluster = kubeCluster()
    const config = new KubeConfig()
    config.loadFromFile(cluster.kubeconfig)
    apps = config.makeApiClient(AppsV1Api)
    core = config.makeApiClient(CoreV1Api)
    store = await makeStore('gcs')
    await store.store.push({
      model: await inspectModelFile(fixture('iris_svc.onnx'), fixture('iris_labels.json')),
      name: 'iris',
      metadata: {},
      workDir: tempDir(),
    })
    project = tempDir()
    writeK8sProject(project, store, NAMESPACE)
    await createTestNode(core, {name: NO_KUBELET, label: LABEL, value: NO_KUBELET, nodeInfo: {}})
  })

  after(async () => {
    await core?.deleteNode({name: NO_KUBELET}).catch(() => {})
  })

  it("the loader's delivery (no publication): warms the loader and API images on kwok's node, says the model is not warmed, removes its DaemonSet", async () => {
    const run = await mlops('model', 'warm', 'iris@1')
    expect(run.code, run.stderr).to.equal(0)
    expect(run.stderr).to.contain(
      'the loader delivers iris@1: warming the loader and API images only, each pod still downloads the model ' +
        '(mlops model publish iris@1 and deploy.delivery image-volume put the model itself on the nodes)',
    )
    expect(run.stdout).to.match(
      new RegExp(
        `^warmed 1 node \\(${cluster.nodeName}\\) for iris@1 in [\\d.]+s: registry\\.example\\.com/team/loader:v1, registry\\.example\\.com/team/api:v1\\n$`,
      ),
    )
    expect(await leftovers()).to.deep.equal([])
  })

  it('a nodeSelector that matches no node (mlops.test/warm=nothing) → exit 3, naming the selector; nothing left', async () => {
    const run = await mlops('model', 'warm', 'iris@1', '--set', `nodeSelector={${LABEL}: nothing}`)
    expect(run.code, run.stderr).to.equal(ExitCode.NOT_FOUND)
    expect(run.stderr).to.contain(`Error: no node to warm: none matches the Deployment's nodeSelector ${LABEL}=nothing and tolerations`)
    expect(await leftovers()).to.deep.equal([])
  })

  it('a node that cannot pull (its pod reports ErrImagePull, as a kubelet would) → exit 9, one line naming the node and the image; nothing left', async () => {
    const {done} = startCli(['model', 'warm', 'iris@1', '--timeout', '2m', ...ON_NO_KUBELET], env(), project)
    let pod: V1Pod | undefined
    await waitFor(async () => Boolean((pod = (await warmPods())[0])), 'the warm pod', 60_000)
    const image = 'registry.example.com/team/loader:v1'
    // What a kubelet writes when a pull fails: the pod's container waiting with ErrImagePull.
    const latest = await core.readNamespacedPodStatus({name: pod!.metadata!.name!, namespace: NAMESPACE})
    latest.status = {
      ...latest.status,
      phase: 'Pending',
      initContainerStatuses: [
        {
          name: 'loader',
          image,
          imageID: '',
          ready: false,
          restartCount: 0,
          state: {waiting: {reason: 'ErrImagePull', message: `failed to pull and unpack image "${image}": not found`}},
        },
      ],
    }
    await core.replaceNamespacedPodStatus({name: pod!.metadata!.name!, namespace: NAMESPACE, body: latest})
    const run = await done
    expect(run.code, run.stderr).to.equal(ExitCode.ROLLOUT_FAILED)
    expect(run.stderr.split('\n').filter(line => line.startsWith('Error: '))).to.deep.equal([
      `Error: node ${NO_KUBELET} cannot pull ${image}: ErrImagePull failed to pull and unpack image "${image}": not found`,
    ])
    expect(await leftovers()).to.deep.equal([])
  })

  it('Ctrl-C (SIGINT) while a node has not pulled yet → exit 130, saying the DaemonSet was removed; nothing left', async () => {
    const {child, done} = startCli(['model', 'warm', 'iris@1', ...ON_NO_KUBELET], env(), project)
    await waitFor(async () => (await warmPods()).length > 0, 'the warm pod', 60_000)
    child.kill('SIGINT')
    const run = await done
    expect(run.code, run.stderr).to.equal(ExitCode.INTERRUPTED)
    expect(run.stderr).to.match(
      /^Error: mlops model warm interrupted \(SIGINT\): removed daemonset\/iris-warm from warm \(the warm\); the Deployment is as it was$/m,
    )
    expect(await leftovers()).to.deep.equal([])
  })

  it("a warm killed with -9 leaves its DaemonSet: the next deploy (once the warm's deadline has passed) removes it, and says so", async () => {
    const {child, done} = startCli(['model', 'warm', 'iris@1', '--timeout', '3s', ...ON_NO_KUBELET], env(), project)
    await waitFor(async () => (await warmPods()).length > 0, 'the warm pod', 60_000)
    child.kill('SIGKILL')
    await done
    expect(await leftovers()).to.include('daemonset/iris-warm')
    const until = Date.parse(
      (await apps.readNamespacedDaemonSet({name: 'iris-warm', namespace: NAMESPACE})).metadata!.annotations!['mlops.io/warm-until'],
    )
    await new Promise(resolve => {
      setTimeout(resolve, Math.max(0, until - Date.now()) + 500)
    })
    const run = await mlops('deploy', '--model', 'iris@1', '--timeout', '2m')
    expect(run.code, run.stderr).to.equal(0)
    expect(run.stderr).to.contain('removed daemonset/iris-warm, left by an earlier warm')
    expect(await leftovers()).to.deep.equal([])
  })

  it('a warm killed with -9 within its deadline: the next model warm replaces it (removedLeftover), and deploy --prewarm reports the nodes it warmed', async () => {
    const {child, done} = startCli(['model', 'warm', 'iris@1', ...ON_NO_KUBELET], env(), project)
    await waitFor(async () => (await warmPods()).length > 0, 'the warm pod', 60_000)
    child.kill('SIGKILL')
    await done
    const warm = await mlops('model', 'warm', 'iris@1', '--json')
    expect(warm.code, warm.stderr).to.equal(0)
    expect(JSON.parse(warm.stdout)).to.include({removedLeftover: 'iris-warm', daemonSet: 'iris-warm', delivery: 'init-container'})
    const deploy = await mlops('deploy', '--model', 'iris@1', '--prewarm', '--json')
    expect(deploy.code, deploy.stderr).to.equal(0)
    const result = JSON.parse(deploy.stdout)
    expect(result.prewarm).to.include({model: 'iris@1', namespace: NAMESPACE, removedLeftover: null})
    expect(result.prewarm.nodes).to.deep.equal([cluster.nodeName])
    expect(result.rollout).to.match(/available/)
    expect(await leftovers()).to.deep.equal([])
  })

  it('deploy --prewarm with --dry-run or --diff → exit 2 (a dry run pulls nothing)', async () => {
    const run = await mlops('deploy', '--model', 'iris@1', '--prewarm', '--dry-run', 'server')
    expect(run.code, run.stderr).to.equal(ExitCode.USAGE)
    expect(run.stderr).to.match(/--prewarm|--dry-run/)
  })
})
