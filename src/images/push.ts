import type Docker from 'dockerode'

import {NotFoundError, PermissionError, UnavailableError, errorMessage} from '../errors.js'
import type {RegistryAuth} from './credentials.js'
import {jsonLines} from './docker.js'
import {registryOf} from './names.js'

interface PushEvent {
  status?: string
  aux?: {Tag?: string; Digest?: string}
  error?: string
  errorDetail?: {message?: string}
}

/**
 * Pushes one local image to the registry in its name. The engine answers a
 * refused push with HTTP 200 and an error event in the stream, so every
 * event is checked; the digest comes from the final aux event.
 */
export async function pushImage(
  docker: Docker,
  ref: string,
  auth: RegistryAuth | undefined,
): Promise<{ref: string; digest: string; pinned: string}> {
  const registry = registryOf(ref)
  const colon = ref.lastIndexOf(':')
  const [name, tag] = [ref.slice(0, colon), ref.slice(colon + 1)]
  const image = docker.getImage(ref)
  await image.inspect().catch(error => {
    if ((error as {statusCode?: number}).statusCode === 404)
      throw new NotFoundError(`image ${ref} is not in the Docker engine`, {suggestion: 'build it first: mlops image build'})
    throw error
  })
  let stream: NodeJS.ReadableStream
  try {
    stream = await image.push({tag, authconfig: auth ?? {serveraddress: registry}})
  } catch (error) {
    throw classify(errorMessage(error), registry)
  }

  let digest: string | undefined
  for await (const event of jsonLines<PushEvent>(stream)) {
    if (event.errorDetail || event.error)
      throw classify(event.errorDetail?.message ?? event.error ?? 'push failed', registry, auth !== undefined)
    if (event.aux?.Digest) digest = event.aux.Digest
  }

  if (!digest) throw new UnavailableError(`pushing ${ref}: the engine reported no digest`)
  return {ref, digest, pinned: `${name}@${digest}`}
}

function classify(message: string, registry: string, hadCredentials = false): Error {
  if (/unauthorized|authentication required|no basic auth credentials|denied|forbidden|401|403/i.test(message)) {
    return new PermissionError(`${registry} refused the push: ${message}`, {
      suggestion: hadCredentials
        ? 'the credentials were rejected: check MLOPS_REGISTRY_USERNAME/PASSWORD or log in again (docker login)'
        : `no credentials for ${registry}: docker login ${registry}, or set MLOPS_REGISTRY_USERNAME and MLOPS_REGISTRY_PASSWORD`,
    })
  }

  return new UnavailableError(`pushing to ${registry} failed: ${message}`, {
    suggestion: `check that ${registry} is reachable from the Docker engine`,
  })
}
