import type Docker from 'dockerode'
import {join} from 'node:path'

import {deploymentName} from '../config/deploy.js'
import {NotFoundError, RolloutError} from '../errors.js'
import {requireCompatible, runtimeSupportFor} from '../images/compat.js'
import {containerLogs, runToEnd} from '../images/containers.js'
import {imageNames} from '../images/names.js'
import {
  API_ENV,
  GCS_KEY_PATH,
  LOG_EVENTS,
  WORKDIR,
  apiEnv,
  envList,
  findLogEvent,
  isReady,
  loaderArgs,
  loaderEnv,
  serveRefusal,
  waitUntilReady,
} from '../pod/contract.js'
import {type DockerDeployment, readState, updateState} from '../state/project-state.js'
import type {ModelManifest} from '../store/manifest.js'
import {type StoreSettings, storeLocation} from '../store/open.js'
import {freePort} from '../util/net.js'
import {releaseDeployLock, whileDeploying, withDeployLock} from './deploy-guard.js'
import {resolveDeployModel} from './deploy-model.js'
import {type Target, type TargetContext, liveness} from './target.js'

export interface DockerDeployRequest {
  name: string
  manifest: ModelManifest
  images: {loader: string; api: string}
  store: StoreSettings
  /** The version has a reference set: the loader fetches it, serve checks its answers against it. */
  reference?: boolean
  timeoutMs: number
  onProgress?: (text: string) => void
  /** --json: an interrupted deploy's error also goes to stdout as JSON. */
  json?: boolean
}

/**
 * The pod shape on a Docker engine: the loader container pulls the pinned
 * model into a named volume (the emptyDir), then the API container serves it
 * from that volume; both on the host network (the engines here have no
 * bridge), never pulling images. A failed loader is diagnosed from its own
 * structured log, as the Kubernetes target does from its termination message.
 */
export async function deployDocker(docker: Docker, projectDir: string, request: DockerDeployRequest): Promise<DockerDeployment> {
  const root = join(projectDir, '.mlops', 'docker')
  return withDeployLock(root, 'docker', async () => deployUnderLock(docker, projectDir, root, request))
}

async function deployUnderLock(docker: Docker, projectDir: string, root: string, request: DockerDeployRequest): Promise<DockerDeployment> {
  const {manifest, name} = request
  const model = `${manifest.name}@${manifest.version}`
  // A new volume and container per deploy: what runs now keeps serving until the new one is ready.
  const suffix = `${manifest.version}-${Date.now().toString(36)}`.replaceAll(/[^A-Za-z0-9_.-]/g, '-')
  const volume = `mlops-${name}-workdir-${suffix}`
  const containerName = `mlops-${name}-api-${suffix}`
  const previous = (await readState(projectDir)).docker
  let recorded: DockerDeployment | undefined
  // Ctrl-C or SIGTERM: before the new container is recorded, it, its loader and its volume go and
  // the previous one serves on, recorded; after, the new one serves and the previous one goes.
  const stop = async () => {
    if (recorded) {
      if (previous) await removeDeployment(docker, previous)
      return `${recorded.model} serves at ${recorded.url}, recorded${previous ? `; ${previous.model} was removed` : ''}`
    }

    await removeStarted(docker, name, suffix)
    releaseDeployLock(root)
    return `nothing new was started${previous ? `; ${previous.model} still serves` : ''}`
  }

  return whileDeploying(stop, async () => deployContainers(), {json: request.json})

  async function deployContainers(): Promise<DockerDeployment> {
    await docker.createVolume({Name: volume, Labels: {'io.mlops.project': name, 'io.mlops.deploy': suffix}})
    try {
      await loadIntoVolume(docker, request, volume, suffix)
      const url = await startApi(docker, request, volume, containerName, suffix)
      const deployment: DockerDeployment = {
        container: containerName,
        url,
        model,
        sha256: manifest.sha256,
        volume,
        startedAt: new Date().toISOString(),
      }
      await updateState(projectDir, state => {
        state.docker = deployment
      })
      recorded = deployment
      if (previous) await removeDeployment(docker, previous)
      return deployment
    } catch (error) {
      if (!recorded) await removeStarted(docker, name, suffix)
      throw error
    }
  }
}

/** What one deploy started, found by its labels: its loader runs, its API container, its volume. */
async function removeStarted(docker: Docker, project: string, deploy: string): Promise<void> {
  const containers = await docker
    .listContainers({all: true, filters: {label: [`io.mlops.project=${project}`, `io.mlops.deploy=${deploy}`]}})
    .catch(() => [])
  await Promise.all(containers.map(async container => removeContainer(docker, container.Id)))
  const {Volumes: volumes = []} = await docker
    .listVolumes({filters: {label: [`io.mlops.project=${project}`, `io.mlops.deploy=${deploy}`]}})
    .catch(() => ({Volumes: []}))
  await Promise.all(
    volumes.map(async volume =>
      docker
        .getVolume(volume.Name)
        .remove({force: true})
        .catch(() => {}),
    ),
  )
}

async function removeDeployment(docker: Docker, deployment: DockerDeployment): Promise<void> {
  await removeContainer(docker, deployment.container)
  await docker
    .getVolume(deployment.volume)
    .remove({force: true})
    .catch(() => {})
}

/** The initContainer's part: mlops model pull into the volume, run to completion. */
async function loadIntoVolume(docker: Docker, request: DockerDeployRequest, volume: string, deploy: string): Promise<void> {
  const {manifest, images, store} = request
  const Labels = {'io.mlops.project': request.name, 'io.mlops.deploy': deploy, 'io.mlops.role': 'loader'}
  const model = `${manifest.name}@${manifest.version}`
  request.onProgress?.(`Loading ${model} into volume ${volume}`)
  // A fresh volume is root-owned; Kubernetes' emptyDir is writable by the pod: make it so.
  await runToEnd(docker, {
    Image: images.loader,
    Labels,
    User: 'root',
    Entrypoint: ['chmod', '0777', WORKDIR],
    HostConfig: {NetworkMode: 'host', Binds: [`${volume}:${WORKDIR}`]},
  })
  const location = storeLocation(store)
  const localRoot = location.kind === 'local' ? location.root : undefined
  const key = process.env.GOOGLE_APPLICATION_CREDENTIALS
  const loader = await runToEnd(docker, {
    Image: images.loader,
    Labels,
    Env: envList(loaderEnv(store, {store: localRoot, keyFile: Boolean(key)})),
    Cmd: loaderArgs(manifest, {reference: request.reference}),
    HostConfig: {
      NetworkMode: 'host',
      Binds: [
        `${volume}:${WORKDIR}`,
        // A local store is read where it is on the host; credentials go in read-only.
        ...(localRoot ? [`${localRoot}:${localRoot}:ro`] : []),
        ...(key ? [`${key}:${GCS_KEY_PATH}:ro`] : []),
      ],
    },
  })
  if (loader.code !== 0) {
    const failure = findLogEvent(loader.stderr, LOG_EVENTS.pullFailed) as {code?: string; message?: string} | undefined
    throw new RolloutError(
      `the model loader failed (exit ${loader.code}): ${failure ? `${failure.code}: ${failure.message}` : loader.stderr.trim().split('\n').slice(-2).join(' | ')}`,
      {
        suggestion: 'the API container was not started; check the model ref and the store settings',
      },
    )
  }
}

/** The API container on the volume, host network, a free port on 127.0.0.1; returns its URL once /ready answers. */
async function startApi(
  docker: Docker,
  request: DockerDeployRequest,
  volume: string,
  containerName: string,
  deploy: string,
): Promise<string> {
  const {manifest, images, name} = request
  const port = await freePort()
  request.onProgress?.(`Starting ${containerName} on 127.0.0.1:${port}`)
  const container = await docker.createContainer({
    name: containerName,
    Image: images.api,
    Labels: {
      'io.mlops.project': name,
      'io.mlops.deploy': deploy,
      'io.mlops.role': 'api',
      'io.mlops.model': `${manifest.name}@${manifest.version}`,
    },
    Env: envList([...apiEnv(manifest, port, {reference: request.reference}), {name: API_ENV.host, value: '127.0.0.1'}]),
    HostConfig: {NetworkMode: 'host', Binds: [`${volume}:${WORKDIR}:ro`], RestartPolicy: {Name: 'no'}},
  })
  await container.start()
  const url = `http://127.0.0.1:${port}`
  const outcome = await waitUntilReady({
    url: () => url,
    async failure() {
      const info = await container.inspect()
      if (info.State.Running) return undefined
      const logs = await containerLogs(docker, container)
      const refused = serveRefusal(logs)
      if (refused) throw refused
      return `the API container exited (code ${info.State.ExitCode}) before it was ready: ${logs.trim().split('\n').slice(-2).join(' | ')}`
    },
    timeoutMs: request.timeoutMs,
    intervalMs: 100,
  })
  if ('url' in outcome) return outcome.url
  if ('failure' in outcome) throw new RolloutError(outcome.failure)
  throw new RolloutError(`the API container was not ready within ${Math.round(request.timeoutMs / 1000)}s`, {
    suggestion: `docker logs ${containerName}`,
  })
}

export async function dockerStatus(docker: Docker, projectDir: string): Promise<DockerDeployment & {running: boolean; ready: boolean}> {
  const deployment = (await readState(projectDir)).docker
  if (!deployment) throw new NotFoundError('nothing is deployed on the docker target', {suggestion: 'mlops deploy --target docker'})
  const running = await docker
    .getContainer(deployment.container)
    .inspect()
    .then(
      info => info.State.Running,
      () => false,
    )
  const ready = running && (await isReady(deployment.url))
  return {...deployment, running, ready}
}

export async function deleteDocker(docker: Docker, projectDir: string): Promise<DockerDeployment> {
  const deployment = (await readState(projectDir)).docker
  if (!deployment) throw new NotFoundError('nothing is deployed on the docker target')
  await removeDeployment(docker, deployment)
  await updateState(projectDir, state => {
    delete state.docker
  })
  return deployment
}

async function removeContainer(docker: Docker, name: string): Promise<void> {
  const container = docker.getContainer(name)
  // SIGTERM first: mlops serve finishes its in-flight requests.
  await container.stop({t: 10}).catch(() => {})
  await container.remove({force: true}).catch(() => {})
}

/** deploy --target docker: the API container that serves the model, fed by the loader container's volume. */
export interface DockerDeployResult {
  target: 'docker'
  model: string
  sha256: string
  url: string
  container: string
  images: {loader: string; api: string}
  unchanged: false
  seconds: number
}

export type DockerStatusResult = {target: 'docker'} & DockerDeployment & {running: boolean; ready: boolean}

export interface DockerDeleteResult {
  target: 'docker'
  model: string
  container: string
}

export interface DockerResults {
  deploy: DockerDeployResult
  status: DockerStatusResult
  delete: DockerDeleteResult
}

/** The pod shape on the Docker engine: loader container into a volume, then the API container. */
export function dockerTarget({project, io}: TargetContext): Target<DockerResults> {
  const engine = async () => (await import('../images/docker.js')).connectDocker()
  return {
    async deploy(request) {
      const started = Date.now()
      const {settings, manifest, reference} = await resolveDeployModel(project, request, {cluster: false})
      const names = await imageNames(project, request.image)
      const images = {loader: names.ref('loader'), api: names.ref('api')}
      const {connectDocker, imageLabels} = await import('../images/docker.js')
      const docker = await connectDocker()
      for (const image of Object.values(images)) await imageLabels(docker, image)
      const runtime = await runtimeSupportFor(images.api)
      requireCompatible(manifest, runtime.support, runtime.source, 'nothing was started')
      const progress = await io.progress()
      progress.start(`Deploying ${manifest.name}@${manifest.version} to Docker`)
      try {
        const deployed = await deployDocker(docker, project.dir, {
          name: deploymentName(project, project.values.deploy ?? {}).name,
          manifest,
          images,
          store: settings,
          reference: reference !== undefined,
          timeoutMs: request.timeoutMs ?? 120_000,
          onProgress: text => progress.text(text),
          json: io.json,
        })
        progress.succeed(`Deployed ${deployed.model} to Docker`)
        io.log(`${deployed.model} serving at ${deployed.url} (container ${deployed.container}, volume ${deployed.volume})`)
        return {
          target: 'docker',
          model: deployed.model,
          sha256: deployed.sha256,
          url: deployed.url,
          container: deployed.container,
          images,
          unchanged: false,
          seconds: (Date.now() - started) / 1000,
        }
      } finally {
        progress.stop()
      }
    },

    async status() {
      const running = await dockerStatus(await engine(), project.dir)
      io.log(
        `docker: ${running.model} (sha256:${running.sha256.slice(0, 12)}) at ${running.url}, container ${running.container}, ${liveness(running)}`,
      )
      return {target: 'docker', ...running}
    },

    async delete() {
      const removed = await deleteDocker(await engine(), project.dir)
      io.log(`removed container ${removed.container} (${removed.model}) and volume ${removed.volume}`)
      return {target: 'docker', model: removed.model, container: removed.container}
    },

    async endpoint() {
      const deployment = (await readState(project.dir)).docker
      if (!deployment)
        throw new NotFoundError('nothing is running on the docker target', {
          suggestion: 'deploy first: mlops deploy --target docker, or pass --url',
        })
      return {url: deployment.url, close: async () => {}}
    },
  }
}
