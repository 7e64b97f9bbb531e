import type Docker from 'dockerode'

import {IntegrityError, NotFoundError, PermissionError, UnavailableError, errorMessage} from '../errors.js'
import type {ProjectConfig} from '../config/load.js'
import {statePath, updateState} from '../state/project-state.js'
import {type RegistryAuth, givenCredentials, registryCredentials} from './credentials.js'
import {inspectImage, jsonLines} from './docker.js'
import {type Component, type ImageNames, registryOf} from './names.js'
import {type Platform, archOf, describePlatform, platformOf, platformRef} from './platforms.js'
import {sha256Of} from './oci.js'
import {RegistryClient} from './registry.js'

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

/** The manifest kinds an engine pushes, and the index kind that lists them. */
const MANIFEST_TYPES = {
  docker: 'application/vnd.docker.distribution.manifest.v2+json',
  oci: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
} as const

/** One platform's entry of an index: its manifest as the registry holds it. */
interface PlatformEntry {
  platform: Platform
  digest: string
  mediaType: string
  size: number
}

/**
 * Several platforms' images as one name: each <ref>-<arch> image pushed through the engine,
 * its manifest read back from the registry and checked against the digest the engine reported,
 * then an index listing them (platform, digest, size) put under <ref>'s tag. Nodes pull the
 * index's digest and take their own platform's entry; the index's digest is what deploy pins.
 */
export async function pushImageIndex(
  docker: Docker,
  ref: string,
  platforms: readonly Platform[],
  auth: RegistryAuth | undefined,
): Promise<{ref: string; digest: string; pinned: string}> {
  const colon = ref.lastIndexOf(':')
  const [name, tag] = [ref.slice(0, colon), ref.slice(colon + 1)]
  for (const platform of platforms) await requireLocalPlatform(docker, platformRef(ref, platform), platform)
  const registry = registryClient(name, auth)
  const manifests: PlatformEntry[] = []
  for (const platform of platforms) {
    const pushed = await pushImage(docker, platformRef(ref, platform), auth)
    const body = await registry.getManifest(pushed.digest, `${MANIFEST_TYPES.docker}, ${MANIFEST_TYPES.oci}`)
    if (!body) throw new UnavailableError(`${registryOf(ref)} has no manifest ${pushed.digest} right after the engine pushed it`)
    if (sha256Of(body) !== pushed.digest)
      throw new IntegrityError(`${registryOf(ref)} answered another manifest for ${pushed.digest} than the engine pushed`)
    const mediaType = manifestMediaType(body)
    if (mediaType !== MANIFEST_TYPES.docker && mediaType !== MANIFEST_TYPES.oci)
      throw new IntegrityError(`${registryOf(ref)} answered a manifest of another kind for ${pushed.digest}`)
    manifests.push({platform, digest: pushed.digest, mediaType, size: body.length})
  }

  // A Docker manifest list over Docker manifests, as the engine's own pushes are; an OCI index otherwise.
  const mediaType = manifests.every(m => m.mediaType === MANIFEST_TYPES.docker) ? MANIFEST_TYPES.dockerList : MANIFEST_TYPES.ociIndex
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: manifests.map(m => ({
        mediaType: m.mediaType,
        digest: m.digest,
        size: m.size,
        platform: {architecture: archOf(m.platform), os: 'linux'},
      })),
    }),
  )
  const digest = sha256Of(index)
  await registry.putManifest(tag, index, mediaType, digest)
  return {ref, digest, pinned: `${name}@${digest}`}
}

/** The image the engine has under ref, which must be for this platform (exit 3 when it is missing or another). */
export async function requireLocalPlatform(docker: Docker, ref: string, platform: Platform): Promise<void> {
  const info = await inspectImage(docker, ref)
  const build = `build it: mlops image build --platform ${platform}`
  if (!info) throw new NotFoundError(`image ${ref} (${platform}) is not in the Docker engine`, {suggestion: build})
  if (platformOf(info.Os, info.Architecture) !== platform)
    throw new NotFoundError(`image ${ref} is ${describePlatform(info.Os, info.Architecture)} in the Docker engine, not ${platform}`, {
      suggestion: build,
    })
}

/** The media type a manifest names for itself, or undefined when it is not a JSON object naming one. */
function manifestMediaType(body: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as unknown
    const type = typeof parsed === 'object' && parsed !== null ? (parsed as {mediaType?: unknown}).mediaType : undefined
    return typeof type === 'string' ? type : undefined
  } catch {
    return undefined
  }
}

/** A client for REGISTRY/REPOSITORY of an image name; Docker Hub's short names as the Docker CLI expands them. */
function registryClient(name: string, auth: RegistryAuth | undefined): RegistryClient {
  const registry = registryOf(name)
  let repository = registry === 'docker.io' ? name.replace(/^docker\.io\//, '') : name.slice(registry.length + 1)
  if (registry === 'docker.io' && !repository.includes('/')) repository = `library/${repository}`
  return new RegistryClient({registry: registry === 'docker.io' ? 'registry-1.docker.io' : registry, repository}, auth)
}

/**
 * The platforms image build built under ref (its io.mlops.platforms label), with the platform of
 * the image itself as the one when the label is missing or not a list mlops wrote.
 */
export async function builtPlatforms(docker: Docker, ref: string): Promise<Platform[]> {
  const info = await inspectImage(docker, ref)
  if (!info) throw new NotFoundError(`image ${ref} is not in the Docker engine`, {suggestion: 'build it first: mlops image build'})
  const label = info.Config?.Labels?.['io.mlops.platforms']
  const listed = typeof label === 'string' ? label.split(',').map(name => platformOf(...(name.split('/') as [string, string]))) : []
  if (listed.length > 0 && listed.every(platform => platform !== undefined)) return [...new Set(listed)] as Platform[]
  const own = platformOf(info.Os, info.Architecture)
  return own ? [own] : []
}

export interface PushedImages {
  images: Array<{component: Component; ref: string; digest: string; pinned: string; platforms: Platform[]}>
  /** Where the digests were recorded (.mlops/state.json), for deploy to pin. */
  state: string
}

/**
 * mlops image push: each component's image (an index of its platforms' images when several:
 * the ones named, else those image build tagged) pushed with the registry credentials, and its
 * digest recorded in .mlops/state.json as soon as it is pushed.
 */
export async function pushProjectImages(
  docker: Docker,
  project: ProjectConfig,
  push: {
    components: Component[]
    names: ImageNames
    platforms?: Platform[]
    username?: string
    onStart?: (ref: string, platforms: Platform[]) => void
    onPushed?: (image: PushedImages['images'][number]) => void
  },
): Promise<PushedImages> {
  const images: PushedImages['images'] = []
  for (const component of push.components) {
    const ref = push.names.ref(component)
    const platforms = push.platforms ?? (await builtPlatforms(docker, ref))
    if (platforms.length === 1) await requireLocalPlatform(docker, ref, platforms[0])
    const auth = await registryCredentials(registryOf(ref), givenCredentials(push.username))
    push.onStart?.(ref, platforms)
    const pushed = platforms.length > 1 ? await pushImageIndex(docker, ref, platforms, auth) : await pushImage(docker, ref, auth)
    const image = {component, ref: pushed.ref, digest: pushed.digest, pinned: pushed.pinned, platforms}
    await updateState(project.dir, state => {
      const {component: _, ...record} = image
      state.images = {...state.images, [component]: {...record, pushedAt: new Date().toISOString()}}
    })
    images.push(image)
    push.onPushed?.(image)
  }

  return {images, state: statePath(project.dir)}
}
