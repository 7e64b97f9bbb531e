import {copyFileSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {parseDocument} from 'yaml'

import {dockerEngine, foreignBaseImage, localRegistry} from '../env/docker.js'
import {FakeGcs} from '../env/fake-gcs.js'
import type {Cluster} from '../env/k8s.js'
import {type RealNode, realNode, trustRegistry} from '../env/node.js'
import {runCli} from '../helpers/cli.js'
import {kubectl} from './cluster.js'
import {fixture, randomBytes, tempDir} from '../helpers/stores.js'

export interface RealNodeProject {
  cluster: Cluster
  node: RealNode
  /** The GCS emulator, on the node's bridge address where pods reach it. */
  gcs: FakeGcs
  bucket: string
  registry: {address: string; stop: () => void}
  /** The project folder made by mlops init. */
  project: string
  /** What the CLI needs: the cluster, the engine, the registry's credentials. */
  env: Record<string, string>
  /** sha256 of iris@1 (the sample SVC) and iris@2 (a logistic regression: other answers). */
  sha: {v1: string; v2: string}
  mlops: (...args: string[]) => ReturnType<typeof runCli>
  stop(): Promise<void>
}

interface ProjectOptions {
  pushModels?: boolean
  replicas?: number | 'init default'
  /** image.platforms: with linux/arm64, its images are built under QEMU from the arm64 stand-in base. */
  platforms?: Array<'linux/amd64' | 'linux/arm64'>
}

/**
 * What a user does before a first deploy, on a real node: mlops init, a gs://
 * store (the emulator), mlops.yaml pointing the pods at the node, two model
 * versions pushed, both images built and pushed to a registry that needs
 * credentials, and the pull Secret made with mlops image secret. Every step
 * is the real CLI; a failing step throws with its output. One replica unless
 * `replicas` says otherwise ('init default': as mlops init makes the project).
 */
export async function realNodeProject(namespace: string, options: ProjectOptions = {}): Promise<RealNodeProject> {
  // The engine before the node: a dockerd first started while the real node ran (npm run e2e on a
  // machine with no engine yet) failed every container start once ("runc create failed: can't get
  // final child's PID from pipe"); one started before it never has.
  const {dockerHost, baseImage} = dockerEngine()
  const {cluster, node} = realNode()
  const password = randomBytes(12).toString('hex')
  const registry = localRegistry('e2e-ci', password)
  trustRegistry(node, registry.address)
  const gcs = await FakeGcs.start({host: node.gateway})
  // A step that fails leaves nothing running: the caller gets no handle to stop these with.
  try {
    return await setUpProject(namespace, options, {cluster, node, dockerHost, baseImage, password, registry, gcs})
  } catch (error) {
    await gcs.stop()
    registry.stop()
    throw error
  }
}

async function setUpProject(
  namespace: string,
  options: ProjectOptions,
  {
    cluster,
    node,
    dockerHost,
    baseImage,
    password,
    registry,
    gcs,
  }: {
    cluster: ReturnType<typeof realNode>['cluster']
    node: ReturnType<typeof realNode>['node']
    dockerHost: string
    baseImage: string
    password: string
    registry: ReturnType<typeof localRegistry>
    gcs: FakeGcs
  },
): Promise<RealNodeProject> {
  const bucket = 'e2e-models'
  await gcs.createBucket(bucket)
  const workdir = tempDir('mlops-e2e-')
  const env = {
    KUBECONFIG: cluster.kubeconfig,
    DOCKER_HOST: dockerHost,
    DOCKER_CONFIG: tempDir(),
    MLOPS_REGISTRY_USERNAME: 'e2e-ci',
    MLOPS_REGISTRY_PASSWORD: password,
    ...(options.platforms?.includes('linux/arm64')
      ? {MLOPS_BASE_IMAGE: `linux/amd64=${baseImage},linux/arm64=${foreignBaseImage('arm64')}`}
      : {}),
  }
  const check = async (what: string, run: ReturnType<typeof runCli>) => {
    const result = await run
    if (result.code !== 0) throw new Error(`${what} exited ${result.code}: ${result.stderr}`)
    return result
  }

  await check(
    'mlops init',
    runCli(
      [
        'init',
        'iris',
        '--yes',
        '--store',
        `gs://${bucket}/models`,
        '--image-repository',
        `${registry.address}/e2e`,
        '--namespace',
        namespace,
        ...(options.replicas === 'init default' ? [] : ['--replicas', String(options.replicas ?? 1)]),
      ],
      env,
      workdir,
    ),
  )
  const project = join(workdir, 'iris')
  const config = parseDocument(readFileSync(join(project, 'mlops.yaml'), 'utf8'))
  config.setIn(['store'], {uri: `gs://${bucket}/models`, endpoint: gcs.url, timeout: 5})
  config.setIn(['image', 'tag'], 'e2e')
  if (options.platforms) config.setIn(['image', 'platforms'], options.platforms)
  config.setIn(['deploy', 'target'], 'k8s')
  config.setIn(['deploy', 'nodeSelector'], {'kubernetes.io/hostname': node.nodeName})
  config.setIn(['deploy', 'tolerations'], [{key: 'mlops.io/real-node', operator: 'Exists', effect: 'NoSchedule'}])
  config.setIn(['deploy', 'imagePullSecrets'], ['iris-registry'])
  writeFileSync(join(project, 'mlops.yaml'), config.toString())
  const mlops = async (...args: string[]) => runCli(args, env, project)

  copyFileSync(fixture('iris_logreg.onnx'), join(project, 'model', 'logreg.onnx'))
  const sha = {v1: '', v2: ''}
  const versions = [
    ['model/model.onnx', 'v1'],
    ['model/logreg.onnx', 'v2'],
  ] as const
  for (const [model, version] of options.pushModels === false ? [] : versions) {
    sha[version] = JSON.parse(
      (await check('mlops model push', mlops('model', 'push', model, '--name', 'iris', '--labels', 'model/labels.json', '--json'))).stdout,
    ).sha256
  }

  for (const step of [
    ['image', 'build'],
    ['image', 'push'],
    ['image', 'secret'],
  ])
    await check(`mlops ${step.join(' ')}`, mlops(...step))
  return {
    cluster,
    node,
    gcs,
    bucket,
    registry,
    project,
    env,
    sha,
    mlops,
    async stop() {
      // Its pods go with it: the node's CPU and memory are shared by the e2e files that run after this one.
      kubectl(cluster.kubeconfig, ['delete', 'namespace', namespace, '--ignore-not-found', '--wait=true', '--timeout=180s'])
      await gcs.stop()
      registry.stop()
    },
  }
}
