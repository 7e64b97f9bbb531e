import {expect} from 'chai'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {clientsFor, currentPods, isReady, kubectl} from './cluster.js'
import {type RealNodeProject, realNodeProject} from './environment.js'

const NAMESPACE = 'mlops-e2e-platforms'

/**
 * Images built for linux/amd64 and linux/arm64 (the arm64 ones under QEMU), pushed as one index
 * per image, deployed on the real node (amd64): the pods are pinned to the indexes' digests and
 * containerd takes the node's own platform's entry.
 */
describe('an index of two platforms on a real amd64 node (kubelet, containerd): the node runs its own entry', function () {
  this.timeout(10 * 60 * 1000)
  let setup: RealNodeProject

  before(async function () {
    // Both images for both platforms, the arm64 API image's npm step under emulation: minutes.
    this.timeout(45 * 60 * 1000)
    setup = await realNodeProject(NAMESPACE, {platforms: ['linux/amd64', 'linux/arm64']})
  })

  after(async () => {
    await setup?.stop()
  })

  it('deploy pins both images to their index digests, warns of nothing, and the pod runs the amd64 entry and serves', async () => {
    const state = JSON.parse(readFileSync(join(setup.project, '.mlops', 'state.json'), 'utf8')) as {
      images: Record<'loader' | 'api', {pinned: string; platforms: string[]}>
    }
    expect(state.images.api.platforms).to.deep.equal(['linux/amd64', 'linux/arm64'])
    const deployed = await setup.mlops('deploy', '--model', 'iris@1')
    expect(deployed.code, deployed.stderr).to.equal(0)
    expect(deployed.stderr).to.not.contain('Warning')

    const [pod] = await currentPods(clientsFor(setup.cluster.kubeconfig), NAMESPACE)
    expect(isReady(pod)).to.equal(true)
    expect(pod.spec!.initContainers![0].image).to.equal(state.images.loader.pinned)
    expect(pod.spec!.containers[0].image).to.equal(state.images.api.pinned)
    const arch = kubectl(setup.cluster.kubeconfig, [
      'exec',
      '-n',
      NAMESPACE,
      pod.metadata!.name!,
      '-c',
      'api',
      '--',
      'node',
      '-p',
      'process.arch',
    ])
    expect(arch.trim()).to.equal('x64')

    const predicted = await setup.mlops('predict', '--data', '[[6.3, 3.3, 6.0, 2.5]]', '--expect', 'virginica')
    expect(predicted.code, predicted.stderr).to.equal(0)
  })
})
