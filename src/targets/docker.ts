import type Docker from 'dockerode'
import {PassThrough} from 'node:stream'
import {setTimeout as sleep} from 'node:timers/promises'

import {NotFoundError, RolloutError} from '../errors.js'
import {readState, updateState} from '../images/state.js'
import type {ModelManifest} from '../store/manifest.js'
import {type StoreSettings, localStoreRoot} from '../store/open.js'
import {freePort} from '../util/net.js'

export interface DockerDeployment {
  container: string
  url: string
  model: string
  sha256: string
  volume: string
  startedAt: string
}

export interface DockerDeployRequest {
  name: string
  manifest: ModelManifest
  images: {loader: string; api: string}
  store: StoreSettings
  timeoutMs: number
  onProgress?: (text: string) => void
}

/**
 * The pod shape on a Docker engine: the loader container pulls the pinned
 * model into a named volume (the emptyDir), then the API container serves it
 * from that volume; both on the host network (the engines here have no
 * bridge), never pulling images. A failed loader is diagnosed from its own
 * structured log, as the Kubernetes target does from its termination message.
 */
export async function deployDocker(docker: Docker, projectDir: string, request: DockerDeployRequest): Promise<DockerDeployment> {
  const {manifest, name} = request
  const model = `${manifest.name}@${manifest.version}`
  // A new volume and container per deploy: what runs now keeps serving until the new one is ready.
  const suffix = `${manifest.version}-${Date.now().toString(36)}`.replaceAll(/[^A-Za-z0-9_.-]/g, '-')
  const volume = `mlops-${name}-workdir-${suffix}`
  const containerName = `mlops-${name}-api-${suffix}`
  const previous = (await readState(projectDir)).docker
  await docker.createVolume({Name: volume, Labels: {'io.mlops.project': name}})
  try {
    await loadIntoVolume(docker, request, volume)
    const url = await startApi(docker, request, volume, containerName)
    const deployment: DockerDeployment = {container: containerName, url, model, sha256: manifest.sha256, volume, startedAt: new Date().toISOString()}
    await updateState(projectDir, state => {
      state.docker = deployment
    })
    if (previous) {
      await removeContainer(docker, previous.container)
      await docker.getVolume(previous.volume).remove({force: true}).catch(() => {})
    }

    return deployment
  } catch (error) {
    await removeContainer(docker, containerName)
    await docker.getVolume(volume).remove({force: true}).catch(() => {})
    throw error
  }
}

/** The initContainer's part: mlops model pull into the volume, run to completion. */
async function loadIntoVolume(docker: Docker, request: DockerDeployRequest, volume: string): Promise<void> {
  const {manifest, images, store} = request
  const model = `${manifest.name}@${manifest.version}`
  request.onProgress?.(`Loading ${model} into volume ${volume}`)
  // A fresh volume is root-owned; Kubernetes' emptyDir is writable by the pod: make it so.
  await runToEnd(docker, {Image: images.loader, User: 'root', Entrypoint: ['chmod', '0777', '/workdir'], HostConfig: {NetworkMode: 'host', Binds: [`${volume}:/workdir`]}})
  const localRoot = localStoreRoot(store)
  const key = process.env.GOOGLE_APPLICATION_CREDENTIALS
  const env = [
    `MLOPS_STORE=${localRoot ?? store.uri}`, 'MLOPS_LOG_FORMAT=json',
    ...(store.endpoint ? [`MLOPS_GCS_ENDPOINT=${store.endpoint}`] : []),
    ...(store.anonymous ? ['MLOPS_GCS_ANONYMOUS=true'] : []),
    ...(store.project ? [`MLOPS_GCS_PROJECT=${store.project}`] : []),
    ...(key ? ['GOOGLE_APPLICATION_CREDENTIALS=/var/secrets/google/key.json'] : []),
  ]
  const loader = await runToEnd(docker, {
    Image: images.loader, Env: env,
    Cmd: [model, '--to', '/workdir/model.onnx', ...(manifest.labels ? ['--labels-to', '/workdir/labels.json'] : [])],
    HostConfig: {
      NetworkMode: 'host',
      Binds: [
        `${volume}:/workdir`,
        // A local store is read where it is on the host; credentials go in read-only.
        ...(localRoot ? [`${localRoot}:${localRoot}:ro`] : []),
        ...(key ? [`${key}:/var/secrets/google/key.json:ro`] : []),
      ],
    },
  })
  if (loader.code !== 0) {
    const failure = loader.stderr.split('\n').filter(line => line.startsWith('{')).map(line => JSON.parse(line) as {msg?: string; code?: string; message?: string}).find(line => line.msg === 'pull failed')
    throw new RolloutError(`the model loader failed (exit ${loader.code}): ${failure ? `${failure.code}: ${failure.message}` : loader.stderr.trim().split('\n').slice(-2).join(' | ')}`, {
      suggestion: 'the API container was not started; check the model ref and the store settings',
    })
  }
}

/** The API container on the volume, host network, a free port on 127.0.0.1; returns its URL once /ready answers. */
async function startApi(docker: Docker, request: DockerDeployRequest, volume: string, containerName: string): Promise<string> {
  const {manifest, images, name} = request
  const port = await freePort()
  request.onProgress?.(`Starting ${containerName} on 127.0.0.1:${port}`)
  const container = await docker.createContainer({
    name: containerName, Image: images.api, Labels: {'io.mlops.project': name, 'io.mlops.model': `${manifest.name}@${manifest.version}`},
    Env: ['MODEL_FILEPATH=/workdir/model.onnx', ...(manifest.labels ? ['LABEL_FILEPATH=/workdir/labels.json'] : []), `MODEL_NAME=${manifest.name}`, `MODEL_VERSION=${manifest.version}`, `PORT=${port}`, 'MLOPS_HOST=127.0.0.1'],
    HostConfig: {NetworkMode: 'host', Binds: [`${volume}:/workdir:ro`], RestartPolicy: {Name: 'no'}},
  })
  await container.start()
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + request.timeoutMs
  while (Date.now() < deadline) {
    if (await fetch(`${url}/ready`, {signal: AbortSignal.timeout(2000)}).then(r => r.ok, () => false)) return url
    const info = await container.inspect()
    if (!info.State.Running) {
      const logs = await containerLogs(docker, container)
      throw new RolloutError(`the API container exited (code ${info.State.ExitCode}) before it was ready: ${logs.trim().split('\n').slice(-2).join(' | ')}`)
    }

    await sleep(100)
  }

  throw new RolloutError(`the API container was not ready within ${Math.round(request.timeoutMs / 1000)}s`, {suggestion: `docker logs ${containerName}`})
}

export async function dockerStatus(docker: Docker, projectDir: string): Promise<DockerDeployment & {running: boolean; ready: boolean}> {
  const deployment = (await readState(projectDir)).docker
  if (!deployment) throw new NotFoundError('nothing is deployed on the docker target', {suggestion: 'mlops deploy --target docker'})
  const running = await docker.getContainer(deployment.container).inspect().then(info => info.State.Running, () => false)
  const ready = running && await fetch(`${deployment.url}/ready`, {signal: AbortSignal.timeout(2000)}).then(r => r.ok, () => false)
  return {...deployment, running, ready}
}

export async function deleteDocker(docker: Docker, projectDir: string): Promise<DockerDeployment> {
  const deployment = (await readState(projectDir)).docker
  if (!deployment) throw new NotFoundError('nothing is deployed on the docker target')
  await removeContainer(docker, deployment.container)
  await docker.getVolume(deployment.volume).remove({force: true}).catch(() => {})
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

async function runToEnd(docker: Docker, options: Docker.ContainerCreateOptions): Promise<{code: number; stderr: string}> {
  const container = await docker.createContainer(options)
  try {
    await container.start()
    const {StatusCode} = await container.wait()
    return {code: StatusCode, stderr: await containerLogs(docker, container, 'stderr')}
  } finally {
    await container.remove({force: true}).catch(() => {})
  }
}

async function containerLogs(docker: Docker, container: Docker.Container, which: 'all' | 'stderr' = 'all'): Promise<string> {
  const raw = await container.logs({stdout: which === 'all', stderr: true, follow: false}) as unknown as Buffer
  const out: Buffer[] = []
  const sink = new PassThrough()
  sink.on('data', chunk => out.push(chunk))
  docker.modem.demuxStream(new PassThrough().end(raw) as never, sink, sink)
  await new Promise(resolve => {
    setImmediate(resolve)
  })
  return Buffer.concat(out).toString('utf8')
}
