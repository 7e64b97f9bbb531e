import {CoreV1Api, KubeConfig} from '@kubernetes/client-node'
import {expect} from 'chai'

import type {ModelManifest} from '../../src/store/manifest.js'
import type {Publication} from '../../src/store/publications.js'
import {type KubeClients, serverVersion} from '../../src/targets/k8s/client.js'
import {chooseDelivery} from '../../src/targets/k8s/delivery.js'
import {type Cluster, kubeCluster} from '../env/k8s.js'
import {createTestNode, kubeClientsFor} from '../helpers/kube.js'

/**
 * `--delivery auto` against a real API server holding Node objects whose nodeInfo the test
 * chooses (kwok leaves them alone: they carry no kwok annotation; they are unschedulable and
 * tainted, so no other test's pod lands on them). Each case checks the exact reason a deployer
 * reads, not only which delivery won.
 */
const CASE = 'mlops.test/delivery-case'
const NODES: Array<{name: string; kase: string; kubelet: string; runtime: string}> = [
  {name: 'auto-old-kubelet', kase: 'old-kubelet', kubelet: 'v1.34.2', runtime: 'containerd://2.1.4'},
  {name: 'auto-containerd-17', kase: 'containerd-17', kubelet: 'v1.36.3', runtime: 'containerd://1.7.27'},
  {name: 'auto-cri-o', kase: 'cri-o', kubelet: 'v1.36.3', runtime: 'cri-o://1.31.2'},
  {name: 'auto-mixed-a', kase: 'mixed', kubelet: 'v1.36.3', runtime: 'containerd://2.1.4'},
  {name: 'auto-mixed-b', kase: 'mixed', kubelet: 'v1.36.3', runtime: 'containerd://1.7.27'},
  {name: 'auto-pair-a', kase: 'pair', kubelet: 'v1.36.3', runtime: 'containerd://2.1.4'},
  {name: 'auto-pair-b', kase: 'pair', kubelet: 'v1.35.0', runtime: 'containerd://2.2.0'},
  {name: 'auto-docker', kase: 'docker', kubelet: 'v1.36.3', runtime: 'docker://28.2.2'},
  {name: 'auto-kwok', kase: 'kwok', kubelet: 'kwok-0.8.0', runtime: 'kwok-0.8.0'},
  {name: 'auto-hostile', kase: 'hostile', kubelet: 'v1.36.3', runtime: 'containerd://1.7.0\n\u001B[31mready: yes'},
]

describe('--delivery auto on nodes with chosen kubelet and runtime versions (a real API server)', function () {
  this.timeout(120_000)
  let cluster: Cluster
  let core: CoreV1Api
  let admin: KubeClients
  let restricted: KubeClients
  let gitVersion = ''
  const manifest = {name: 'iris', version: '1'} as ModelManifest
  const publication: Publication = {
    repository: '127.0.0.1:5000/iris-model',
    digest: `sha256:${'a'.repeat(64)}`,
    tag: '1',
    publishedAt: '2026-12-04T00:00:00.000Z',
  }

  before(async () => {
    cluster = kubeCluster()
    const config = new KubeConfig()
    config.loadFromFile(cluster.kubeconfig)
    core = config.makeApiClient(CoreV1Api)
    admin = kubeClientsFor(cluster.kubeconfig)
    restricted = kubeClientsFor(cluster.restrictedKubeconfig)
    gitVersion = (await serverVersion(admin)).gitVersion
    for (const node of NODES)
      await createTestNode(core, {
        name: node.name,
        label: CASE,
        value: node.kase,
        nodeInfo: {containerRuntimeVersion: node.runtime, kubeletVersion: node.kubelet},
      })
  })

  after(async () => {
    for (const node of NODES) await core?.deleteNode({name: node.name}).catch(() => {})
  })

  const auto = async (kase: string, clients: KubeClients = admin, publications = [publication]) =>
    chooseDelivery({requested: 'auto', manifest, publications, clients, nodeSelector: {[CASE]: kase}})
  const loader = (why: string) => ({delivery: {kind: 'init-container'}, reason: `auto: ${why}; the loader pulls the model from the store`})

  it('the nodes carry the versions the test gave them (the API server kept nodeInfo as written)', async () => {
    const listed = await core.listNode({labelSelector: CASE})
    const info = Object.fromEntries(listed.items.map(node => [node.metadata!.name, node.status?.nodeInfo?.containerRuntimeVersion]))
    for (const node of NODES) expect(info[node.name], node.name).to.equal(node.runtime)
  })

  it('an old kubelet (v1.34.2) with a capable runtime → the loader, naming the node and its kubelet', async () => {
    expect(await auto('old-kubelet')).to.deep.equal(loader('node auto-old-kubelet runs kubelet v1.34.2, older than 1.35'))
  })

  it('a kubelet version that is no Kubernetes version (kwok\'s kwok-0.8.0) → the loader, saying so (not "older than")', async () => {
    expect(await auto('kwok')).to.deep.equal(
      loader('node auto-kwok runs kubelet kwok-0.8.0, which is no Kubernetes version; image volumes need 1.35 or newer'),
    )
  })

  it('containerd 1.7 on a current kubelet → the loader, naming the node and its runtime', async () => {
    expect(await auto('containerd-17')).to.deep.equal(
      loader('node auto-containerd-17 runs containerd://1.7.27, which cannot mount image volumes (containerd 2.1+ or CRI-O 1.31+ can)'),
    )
  })

  it('CRI-O 1.31 → the image volume, pinned by digest, saying what was found', async () => {
    expect(await auto('cri-o')).to.deep.equal({
      delivery: {kind: 'image-volume', image: `${publication.repository}@${publication.digest}`},
      reason: `auto: Kubernetes ${gitVersion}, 1 node on cri-o 1.31.2, and iris@1 is published as ${publication.repository}`,
    })
  })

  it('a mixed pair (containerd 2.1 and 1.7) → the loader, naming the node that cannot', async () => {
    expect(await auto('mixed')).to.deep.equal(
      loader('node auto-mixed-b runs containerd://1.7.27, which cannot mount image volumes (containerd 2.1+ or CRI-O 1.31+ can)'),
    )
  })

  it('a pair that both can (containerd 2.1 on 1.36, containerd 2.2 on 1.35) → the image volume, both runtimes named', async () => {
    const choice = await auto('pair')
    expect(choice.delivery).to.deep.equal({kind: 'image-volume', image: `${publication.repository}@${publication.digest}`})
    expect(choice.reason).to.equal(
      `auto: Kubernetes ${gitVersion}, 2 nodes on containerd 2.1.4, containerd 2.2.0, and iris@1 is published as ${publication.repository}`,
    )
  })

  it('a runtime that mounts no images (docker://28.2.2) → the loader, naming it', async () => {
    expect(await auto('docker')).to.deep.equal(
      loader('node auto-docker runs docker://28.2.2, which cannot mount image volumes (containerd 2.1+ or CRI-O 1.31+ can)'),
    )
  })

  it('a node selector that matches no node → the loader, naming the selector', async () => {
    expect(await auto('nothing')).to.deep.equal(loader(`no node matches ${CASE}=nothing`))
  })

  it('a user who cannot list nodes (RBAC) → the loader, saying the nodes could not be read, not an error', async () => {
    expect(await auto('cri-o', restricted)).to.deep.equal(
      loader('the nodes cannot be read (no permission to list nodes) to check their container runtime'),
    )
  })

  it('bad input from the cluster: a runtime version with a newline and an escape sequence → quoted on one line, control characters replaced', async () => {
    const choice = await auto('hostile')
    expect(choice.reason).to.equal(
      loader(
        'node auto-hostile runs containerd://1.7.0??[31mready: yes, which cannot mount image volumes (containerd 2.1+ or CRI-O 1.31+ can)',
      ).reason,
    )
  })

  it('a capable node but no publication → the loader, naming the publish command, before any node is asked', async () => {
    expect(await auto('cri-o', admin, [])).to.deep.equal(loader('iris@1 has no published model image (mlops model publish iris@1)'))
  })
})
