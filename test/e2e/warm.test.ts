import type {AppsV1Api, CoreV1Api} from '@kubernetes/client-node'
import {expect} from 'chai'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {nodeCtr, removeNodeImages} from '../env/node.js'
import {clientsFor, currentPods} from './cluster.js'
import {type RealNodeProject, realNodeProject} from './environment.js'

const NAMESPACE = 'e2e-warm'
const repositoryOf = (reference: string) => reference.split('@')[0].replaceAll('.', '\\.')

/** mlops model warm and deploy --prewarm on a real node: containerd really pulls, and nothing of the warm stays. */
describe('model warm on a real node: the model image and the API image pulled before the rollout', function () {
  this.timeout(10 * 60 * 1000)
  let setup: RealNodeProject
  let core: CoreV1Api
  let apps: AppsV1Api
  let modelImage: string
  let digest: string

  const mlops = async (...args: string[]) => setup.mlops(...args)
  const nodeImages = () => nodeCtr(setup.node, ['images', 'ls', '-q'])
  /** What a warm may leave: its DaemonSet and its pods (labelled mlops.io/warm). */
  const leftovers = async () => [
    ...(await apps.listNamespacedDaemonSet({namespace: NAMESPACE})).items.map(d => `daemonset/${d.metadata!.name}`),
    ...(await core.listNamespacedPod({namespace: NAMESPACE, labelSelector: 'mlops.io/warm'})).items.map(p => `pod/${p.metadata!.name}`),
  ]

  before(async function () {
    this.timeout(45 * 60 * 1000)
    setup = await realNodeProject(NAMESPACE)
    ;({core, apps} = clientsFor(setup.cluster.kubeconfig))
    const published = await mlops('model', 'publish', 'iris@1', '--json')
    expect(published.code, published.stderr).to.equal(0)
    ;({reference: modelImage, digest} = JSON.parse(published.stdout))
  })

  after(async () => {
    await setup?.stop()
  })

  it('a cold node: model warm pulls the model image and the API image, names the node, and removes its DaemonSet and pods', async () => {
    removeNodeImages(setup.node, setup.registry.address)
    expect(nodeImages()).to.not.contain(digest)
    const result = await mlops('model', 'warm', 'iris@1', '--delivery', 'image-volume', '--json')
    expect(result.code, result.stderr).to.equal(0)
    const warm = JSON.parse(result.stdout)
    expect(warm).to.include({
      model: 'iris@1',
      namespace: NAMESPACE,
      daemonSet: 'iris-warm',
      delivery: 'image-volume',
      removedLeftover: null,
    })
    expect(warm.nodes).to.deep.equal([setup.node.nodeName])
    expect(warm.images[0]).to.equal(modelImage)
    expect(warm.images[1]).to.match(/\/api@sha256:/)
    const images = nodeImages()
    expect(images).to.contain(digest)
    expect(images).to.contain(warm.images[1].split('@')[1])
    expect(await leftovers()).to.deep.equal([])
    // Again, as a person reads it: the node has both images already, so this warm is quick.
    const again = await mlops('model', 'warm', 'iris@1', '--delivery', 'image-volume')
    expect(again.code, again.stderr).to.equal(0)
    expect(again.stdout).to.equal(
      `warmed 1 node (${setup.node.nodeName}) for iris@1 in ${/in ([\d.]+)s/.exec(again.stdout)?.[1]}s: ${warm.images.join(', ')}\n`,
    )
  })

  it("deploy --prewarm on a cold node: the warm comes first, and the Deployment's pod pulls nothing", async () => {
    removeNodeImages(setup.node, setup.registry.address)
    const result = await mlops('deploy', '--model', 'iris@1', '--delivery', 'image-volume', '--prewarm', '--json')
    expect(result.code, result.stderr).to.equal(0)
    const deployed = JSON.parse(result.stdout)
    expect(deployed.prewarm.nodes).to.deep.equal([setup.node.nodeName])
    const [pod] = await currentPods({core, apps}, NAMESPACE)
    const events = (await core.listNamespacedEvent({namespace: NAMESPACE, fieldSelector: `involvedObject.name=${pod.metadata!.name}`}))
      .items
    expect(
      events.filter(event => event.reason === 'Pulling').map(event => event.message),
      JSON.stringify(events.map(e => `${e.reason}: ${e.message}`)),
    ).to.deep.equal([])
    expect(await leftovers()).to.deep.equal([])
  })

  it('a model image the registry does not have (a store record naming digest sha256:000…) → exit 9 naming the node that cannot pull; nothing left', async () => {
    const record = join(setup.project, 'missing-image.json')
    const show = JSON.parse((await mlops('model', 'show', 'iris@1', '--json')).stdout)
    writeFileSync(record, JSON.stringify({images: [{...show.images[0], digest: `sha256:${'0'.repeat(64)}`}]}))
    await setup.gcs.overwriteObject(setup.bucket, 'models/iris/1/images.json', readFileSync(record))
    try {
      const result = await mlops('model', 'warm', 'iris@1', '--delivery', 'image-volume', '--timeout', '90s')
      expect(result.code, result.stderr).to.equal(ExitCode.ROLLOUT_FAILED)
      const [line] = result.stderr.split('\n').filter(l => l.startsWith('Error: '))
      // The kubelet reports an image volume's failed pull on the container that mounts it (the API image): the error names the model image.
      expect(line).to.match(
        new RegExp(`^Error: node ${setup.node.nodeName} cannot pull ${repositoryOf(modelImage)}@sha256:0{64}: ErrImagePull .*NotFound`),
      )
    } finally {
      await mlops('model', 'publish', 'iris@1')
    }

    expect(await leftovers()).to.deep.equal([])
  })
})
