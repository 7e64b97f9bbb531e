import type {CoreV1Api} from '@kubernetes/client-node'
import {expect} from 'chai'

import type {KubeClients} from '../../src/targets/k8s/client.js'
import {nodePlatformWarning} from '../../src/targets/k8s/node-platforms.js'
import {clientsFor} from '../e2e/cluster.js'
import {type Cluster, kubeCluster} from '../env/k8s.js'
import {createTestNode, kubeClientsFor} from '../helpers/kube.js'

/**
 * deploy's warning when the images' platforms (what image push recorded) do not cover the nodes
 * the pods may go to: Node objects with chosen nodeInfo on a real API server, selected by a label
 * as deploy.nodeSelector selects them.
 */
const CASE = 'mlops.test/platform-case'
const NODES = [
  {name: 'platform-amd-a', kase: 'amd', architecture: 'amd64'},
  {name: 'platform-mixed-amd', kase: 'mixed', architecture: 'amd64'},
  {name: 'platform-mixed-arm', kase: 'mixed', architecture: 'arm64'},
  {name: 'platform-hostile', kase: 'hostile', architecture: 'arm64\n\u001B[31mok'},
]

describe('deploy warns when the nodes are of a platform the images were not built for (a real API server)', function () {
  this.timeout(120_000)
  let cluster: Cluster
  let core: CoreV1Api
  let admin: KubeClients
  const image = (...platforms: Array<'linux/amd64' | 'linux/arm64'>) => ({ref: 'registry.example/iris/api:1', platforms})

  before(async () => {
    cluster = kubeCluster()
    ;({core} = clientsFor(cluster.kubeconfig))
    admin = kubeClientsFor(cluster.kubeconfig)
    for (const node of NODES)
      await createTestNode(core, {name: node.name, label: CASE, value: node.kase, nodeInfo: {architecture: node.architecture}})
  })

  after(async () => {
    for (const node of NODES) await core?.deleteNode({name: node.name}).catch(() => {})
  })

  it("an image for the nodes' platform, or an index for both, on amd64 and mixed nodes → no warning", async () => {
    expect(await nodePlatformWarning(admin, image('linux/amd64'), {[CASE]: 'amd'})).to.equal(undefined)
    expect(await nodePlatformWarning(admin, image('linux/amd64', 'linux/arm64'), {[CASE]: 'mixed'})).to.equal(undefined)
  })

  it('bad input: an arm64-only image for amd64 nodes → no node can run it, naming them and how to fix it', async () => {
    expect(await nodePlatformWarning(admin, image('linux/arm64'), {[CASE]: 'amd'})).to.equal(
      `registry.example/iris/api:1 is built for linux/arm64 only, and no node matching ${CASE}=amd can run it (platform-amd-a (linux/amd64)): ` +
        'build and push it for them (mlops image build --platform, image.platforms), or pin the pods to nodes of its platform (deploy.nodeSelector kubernetes.io/arch)',
    )
  })

  it('bad input: an amd64-only image for a mixed pool → the arm64 node is named, the amd64 one is not', async () => {
    expect(await nodePlatformWarning(admin, image('linux/amd64'), {[CASE]: 'mixed'})).to.equal(
      'registry.example/iris/api:1 is built for linux/amd64 only, and pods on platform-mixed-arm (linux/arm64) cannot start: ' +
        'build and push it for them (mlops image build --platform, image.platforms), or pin the pods to nodes of its platform (deploy.nodeSelector kubernetes.io/arch)',
    )
  })

  it('bad input: a node reporting a hostile architecture (a newline and a terminal escape) is quoted on one line, without the escape', async () => {
    const warning = await nodePlatformWarning(admin, image('linux/amd64', 'linux/arm64'), {[CASE]: 'hostile'})
    expect(warning).to.contain('platform-hostile (linux/arm64???31mok)')
    expect(warning).to.not.contain('\n').and.to.not.contain('\u001B')
  })

  it('no node matches the selector, or the user may not list nodes → no warning (nothing to vouch for; the rollout says the rest)', async () => {
    expect(await nodePlatformWarning(admin, image('linux/arm64'), {[CASE]: 'none'})).to.equal(undefined)
    expect(await nodePlatformWarning(kubeClientsFor(cluster.restrictedKubeconfig), image('linux/arm64'), {[CASE]: 'amd'})).to.equal(
      undefined,
    )
  })
})
