import Docker from 'dockerode'

import {NotFoundError, UnavailableError, UsageError, errorMessage} from '../errors.js'
import {PLATFORMS, type Platform, describePlatform, platformOf} from './platforms.js'
import {dockerEndpoint} from './engine-labels.js'

/** Where dockerode (docker-modem) connects: DOCKER_HOST, or the default socket. */
export {dockerEndpoint} from './engine-labels.js'

/** A client for the Docker engine that answers /_ping, or exit 7 naming where it looked. */
export async function connectDocker(): Promise<Docker> {
  const docker = new Docker()
  try {
    await docker.ping()
  } catch (error) {
    throw new UnavailableError(`cannot reach the Docker engine at ${dockerEndpoint()}: ${errorMessage(error).split('\n')[0]}`, {
      suggestion: 'start the Docker engine, or set DOCKER_HOST to its address (unix:///path/docker.sock or tcp://127.0.0.1:2375)',
    })
  }

  return docker
}

/** The engine's own platform: what images are built for when no platform is named. */
export async function enginePlatform(docker: Docker): Promise<Platform> {
  const version = (await docker.version()) as {Os?: string; Arch?: string}
  const platform = platformOf(version.Os, version.Arch)
  if (platform) return platform
  throw new UsageError(
    `the Docker engine at ${dockerEndpoint()} is ${describePlatform(version.Os, version.Arch)}: mlops images are built for ${PLATFORMS.join(' and ')}`,
    {suggestion: 'name them: --platform linux/amd64 (image.platforms in mlops.yaml)'},
  )
}

/** What the engine knows of an image, or undefined when it has no image of that name. */
export async function inspectImage(docker: Docker, ref: string): Promise<Docker.ImageInspectInfo | undefined> {
  return docker
    .getImage(ref)
    .inspect()
    .catch(() => undefined)
}

export async function imageLabels(docker: Docker, ref: string): Promise<Record<string, string>> {
  try {
    const info = await docker.getImage(ref).inspect()
    return info.Config?.Labels ?? {}
  } catch (error) {
    if ((error as {statusCode?: number}).statusCode === 404) {
      throw new NotFoundError(`image ${ref} is not in the Docker engine at ${dockerEndpoint()}`, {
        suggestion: 'build it with mlops image build api, or pull it first',
      })
    }

    throw error
  }
}

/** The engine's progress streams (build, push) are JSON lines; a line may arrive split across chunks. */
export async function* jsonLines<T>(stream: NodeJS.ReadableStream): AsyncGenerator<T> {
  let pending = ''
  for await (const chunk of stream) {
    pending += chunk.toString()
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) if (line.trim()) yield JSON.parse(line) as T
  }

  if (pending.trim()) yield JSON.parse(pending) as T
}
