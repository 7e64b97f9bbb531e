import type {AppsV1Api, CoreV1Api} from '@kubernetes/client-node'
import {expect} from 'chai'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {nodeCtr} from '../env/node.js'
import {clientsFor, currentPods as currentPodsOf, isReady} from './cluster.js'
import {type RealNodeProject, realNodeProject} from './environment.js'

const VIRGINICA = JSON.stringify([[6.3, 3.3, 6, 2.5]])
const NAMESPACE = 'e2e-image-volume'

/** Models as OCI images: mlops model publish, then a Kubernetes image volume on the real node (containerd 2.2) instead of the loader. */
describe('models as OCI images on a real node: publish, deploy through an image volume', function () {
  this.timeout(10 * 60 * 1000)
  let setup: RealNodeProject
  let core: CoreV1Api
  let apps: AppsV1Api
  let repository: string
  const published: Record<string, string> = {}

  const mlops = async (...args: string[]) => setup.mlops(...args)
  const json = async (...args: string[]) => {
    const result = await mlops(...args, '--json')
    expect(result.code, `${args.join(' ')}: ${result.stderr}`).to.equal(0)
    return JSON.parse(result.stdout)
  }

  const currentPods = async () => currentPodsOf({core, apps}, NAMESPACE)

  const servedSha = async () => (await json('status')).serving.map((pod: {sha256: string}) => pod.sha256)

  before(async function () {
    this.timeout(45 * 60 * 1000)
    setup = await realNodeProject(NAMESPACE)
    ;({core, apps} = clientsFor(setup.cluster.kubeconfig))
    repository = `${setup.registry.address}/e2e/models/iris`
    for (const version of ['1', '2']) published[version] = (await json('model', 'publish', `iris@${version}`)).digest
  })

  after(async () => {
    await setup?.stop()
  })

  it('publish: the default repository is <image.repository>/models/<name>; publishing again gives the same digest; model show lists it', async () => {
    const again = await json('model', 'publish', 'iris@1')
    expect(again).to.include({repository, tag: '1', digest: published['1'], reference: `${repository}@${published['1']}`})
    expect(again.layer.uploaded).to.equal(false)
    expect((await json('model', 'show', 'iris@1')).images).to.deep.include({
      repository,
      tag: '1',
      digest: published['1'],
      publishedAt: (await json('model', 'show', 'iris@1')).images[0].publishedAt,
    })
  })

  it('deploy --delivery image-volume: no initContainer, the model volume is the image pinned by digest, predict answers, status shows the delivery', async () => {
    const result = await mlops('deploy', '--model', 'iris@1', '--delivery', 'image-volume')
    expect(result.code, result.stderr).to.equal(0)
    expect(result.stderr).to.contain(`delivery: image-volume (deploy.delivery image-volume: ${repository}@sha256:`)
    const [pod] = await currentPods()
    expect(pod.spec?.initContainers ?? []).to.deep.equal([])
    expect(pod.spec?.volumes?.find(v => v.name === 'workdir')?.image).to.deep.equal({
      reference: `${repository}@${published['1']}`,
      pullPolicy: 'IfNotPresent',
    })
    expect(pod.spec?.containers[0].env).to.deep.include({name: 'MODEL_SHA256', value: setup.sha.v1})
    // The first pod on the node pulled the model image: the kubelet says so (what the next test's "no second pull" relies on).
    const events = (await core.listNamespacedEvent({namespace: NAMESPACE, fieldSelector: `involvedObject.name=${pod.metadata!.name}`}))
      .items
    expect(
      events.some(event => /^Pull/.test(event.reason ?? '') && (event.message ?? '').includes(published['1'])),
      JSON.stringify(events.map(e => `${e.reason}: ${e.message}`)),
    ).to.equal(true)
    const predict = await json('predict', '--data', VIRGINICA)
    expect(predict.response).to.deep.equal({prediction: 'virginica'})
    const status = await json('status')
    expect(status.delivery).to.deep.equal({kind: 'image-volume', image: `${repository}@${published['1']}`})
    expect(status.serving[0]).to.include({sha256: setup.sha.v1, matches: true})
    expect((await mlops('status')).stdout).to.contain(`  delivery     image volume ${repository}@${published['1']}`)
  })

  it('a second replica on the same node mounts the image the runtime already has: no second pull', async () => {
    const image = `${repository}@${published['1']}`
    // containerd keeps the image once pulled: it is in the node's image store, under the k8s.io namespace.
    expect(nodeCtr(setup.node, ['-n', 'k8s.io', 'images', 'ls', '-q'])).to.contain(published['1'])
    const result = await mlops(
      'deploy',
      '--model',
      'iris@1',
      '--delivery',
      'image-volume',
      '--set',
      'autoscaling=false',
      '--set',
      'replicas=2',
    )
    expect(result.code, result.stderr).to.equal(0)
    const pods = (await currentPods()).filter(isReady)
    expect(pods).to.have.length(2)
    const newest = pods.sort((a, b) => String(b.metadata?.creationTimestamp).localeCompare(String(a.metadata?.creationTimestamp)))[0]
    const events = (await core.listNamespacedEvent({namespace: NAMESPACE, fieldSelector: `involvedObject.name=${newest.metadata!.name}`}))
      .items
    const pulling = events.filter(event => event.reason === 'Pulling' && (event.message ?? '').includes(published['1']))
    expect(pulling, JSON.stringify(events.map(e => `${e.reason}: ${e.message}`))).to.deep.equal([])
    expect(await servedSha()).to.deep.equal([setup.sha.v1, setup.sha.v1])
    expect(image).to.match(/@sha256:/)
  })

  it("a model image that is not the pinned version (a store record pointing iris@1 at iris@2's image) → the pod never becomes ready; deploy exits 9 naming both digests", async () => {
    const before = JSON.stringify(await servedSha())
    // The store's record is input like any other: here it lies, and the API container's own check catches it.
    const record = join(setup.project, 'tampered-images.json')
    const show = await json('model', 'show', 'iris@1')
    expect(show.images).to.have.length(1)
    writeFileSync(record, JSON.stringify({images: [{...show.images[0], digest: published['2']}]}))
    await setup.gcs.overwriteObject(setup.bucket, 'models/iris/1/images.json', readFileSync(record))
    try {
      const result = await mlops(
        'deploy',
        '--model',
        'iris@1',
        '--delivery',
        'image-volume',
        '--set',
        'replicas=1',
        '--set',
        'autoscaling=false',
        '--set',
        'deploy.progressDeadlineSeconds=30',
        '--timeout',
        '90s',
        '--atomic',
      )
      expect(result.code, result.stderr).to.equal(ExitCode.ROLLOUT_FAILED)
      expect(result.stderr).to.contain(setup.sha.v1).and.to.contain(setup.sha.v2)
      expect(result.stderr).to.match(/rolled back to revision/)
    } finally {
      await json('model', 'publish', 'iris@1')
    }

    // --atomic put the good revision back: every pod serves iris@1.
    expect(JSON.parse(before)).to.not.deep.equal([])
    const after = await servedSha()
    expect(after).to.not.deep.equal([])
    expect(
      after.every((sha: string) => sha === setup.sha.v1),
      JSON.stringify(after),
    ).to.equal(true)
  })

  it('auto: the real node (containerd 2.2, Kubernetes 1.36) gets the image volume; a node whose runtime cannot mount images (kwok) gets the loader, and deploy says why', async () => {
    const real = await mlops('deploy', '--model', 'iris@1', '--delivery', 'auto', '--dry-run', 'server')
    expect(real.code, real.stderr).to.equal(0)
    expect(real.stderr).to.match(
      /delivery: image-volume \(auto: Kubernetes v1\.36\.\d+, 1 node on containerd v?2\.2\.\d+, and iris@1 is published as /,
    )

    const fake = await mlops(
      'deploy',
      '--model',
      'iris@1',
      '--delivery',
      'auto',
      '--dry-run',
      'server',
      '--json',
      '--set',
      `nodeSelector={kubernetes.io/hostname: ${setup.cluster.nodeName}}`,
    )
    expect(fake.code, fake.stderr).to.equal(0)
    const delivery = JSON.parse(fake.stdout).delivery
    expect(delivery.kind).to.equal('init-container')
    // kwok's node reports kwok-0.8.0 as its kubelet version: the one reason that fits it (test/targets/delivery-auto.test.ts has the others).
    expect(delivery.reason).to.equal(
      `auto: node ${setup.cluster.nodeName} runs kubelet kwok-0.8.0, which is no Kubernetes version; image volumes need 1.35 or newer; the loader pulls the model from the store`,
    )

    const unpublished = await mlops('model', 'push', 'model/logreg.onnx', '--name', 'iris', '--json')
    expect(unpublished.code, unpublished.stderr).to.equal(0)
    const version = JSON.parse(unpublished.stdout).version
    const fallback = await mlops('deploy', '--model', `iris@${version}`, '--delivery', 'auto', '--dry-run', 'server')
    expect(fallback.stderr).to.contain(
      `delivery: init-container (auto: iris@${version} has no published model image (mlops model publish iris@${version}); the loader pulls the model from the store)`,
    )
  })

  it('rollback between an image-volume revision and an init-container revision serves the right model each time', async () => {
    const ok = async (...args: string[]) => {
      const result = await mlops(...args)
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).to.equal(0)
    }

    await ok('deploy', '--model', 'iris@1', '--delivery', 'image-volume', '--set', 'replicas=1', '--set', 'autoscaling=false')
    expect(await servedSha()).to.deep.equal([setup.sha.v1])
    await ok('deploy', '--model', 'iris@2', '--delivery', 'init-container', '--set', 'replicas=1', '--set', 'autoscaling=false')
    expect(await servedSha()).to.deep.equal([setup.sha.v2])
    expect((await currentPods())[0].spec?.initContainers).to.have.length(1)
    expect((await json('status')).delivery).to.deep.equal({kind: 'init-container'})
    await ok('rollback')
    expect(await servedSha()).to.deep.equal([setup.sha.v1])
    expect((await currentPods())[0].spec?.initContainers ?? []).to.deep.equal([])
    expect((await json('status')).delivery.kind).to.equal('image-volume')
    await ok('rollback')
    expect(await servedSha()).to.deep.equal([setup.sha.v2])
  })
  it('both deliveries under progressive delivery: a canary through an image volume beside an init-container stable, then a shadow through an image volume; each promoted, nothing left', async () => {
    const leftovers = async () => [
      ...(await apps.listNamespacedDeployment({namespace: NAMESPACE})).items
        .map(d => d.metadata!.name!)
        .filter(n => /-(canary|shadow)$/.test(n)),
      ...(await core.listNamespacedPod({namespace: NAMESPACE, labelSelector: 'mlops.io/track'})).items.map(p => p.metadata!.name!),
    ]
    // The stable is iris@2 through the loader (the test before left it so).
    expect(await servedSha()).to.deep.equal([setup.sha.v2])
    const flags = ['--interval', '2s', '--min-agreement', '0', '--set', 'replicas=1', '--set', 'autoscaling=false', '--json']
    const canary = await json(
      'deploy',
      '--model',
      'iris@1',
      '--delivery',
      'image-volume',
      '--canary',
      '--steps',
      '50',
      ...flags.slice(0, -1),
    )
    expect(canary.canary).to.include({outcome: 'promoted'})
    expect(canary.canary.steps.map((step: {failed: string[]}) => step.failed)).to.deep.equal([[]])
    expect(await servedSha()).to.deep.equal([setup.sha.v1])
    expect((await currentPods())[0].spec?.initContainers ?? []).to.deep.equal([])
    expect(await leftovers()).to.deep.equal([])

    const shadow = await json('deploy', '--model', 'iris@2', '--delivery', 'image-volume', '--shadow', ...flags.slice(0, -1))
    expect(shadow.canary.shadow).to.include({deployment: 'iris-shadow', mirroringPods: 1, stablePods: 1})
    expect(shadow.canary.shadow.failed).to.deep.equal([])
    expect(await servedSha()).to.deep.equal([setup.sha.v2])
    expect((await json('status')).delivery.kind).to.equal('image-volume')
    expect(await leftovers()).to.deep.equal([])
  })
})
