import {rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {UsageError} from '../errors.js'
import {ownTempDir} from '../util/fs-atomic.js'
import {TAG} from '../util/oci-names.js'
import type {ModelStore} from '../store/model-store.js'
import type {ModelRef} from '../store/names.js'
import type {ProjectConfig} from '../config/load.js'
import {type RegistryAuth, SET_REGISTRY_ENV, givenCredentials, registryCredentials} from './credentials.js'
import {imageNames} from './names.js'
import {MEDIA_TYPES, modelImage, modelImageFiles, sha256Of, writeLayer} from './oci.js'
import {type ImageReference, RegistryClient, parseRepository} from './registry.js'

export interface PublishResult {
  model: string
  sha256: string
  repository: string
  tag: string
  digest: string
  /** REPOSITORY@DIGEST: what a pod's image volume names. */
  reference: string
  layer: {digest: string; size: number; uploaded: boolean}
  seconds: number
}

/**
 * mlops model publish: where to (--to, else <image.repository>/models/<name>), with the registry
 * credentials image push uses (a username and password: an identity token cannot push blobs here),
 * then the version published.
 */
export async function publishProjectModel(
  project: ProjectConfig,
  openStore: () => Promise<ModelStore>,
  ref: ModelRef,
  options: {to?: string; tag?: string; username?: string; onProgress?: (text: string) => void},
): Promise<PublishResult> {
  const target = publishTarget(options.to ?? `${(await imageNames(project, {})).repository}/models/${ref.name}`.toLowerCase(), options.to)
  const auth = await registryCredentials(target.registry, givenCredentials(options.username))
  if (auth?.identitytoken && !auth.password)
    throw new UsageError(`the credentials for ${target.registry} are an identity token, which model publish cannot use`, {
      suggestion: SET_REGISTRY_ENV,
    })
  // The store is opened once the destination and its credentials are known to be usable.
  return publishModel(await openStore(), ref, target, auth, {tag: options.tag, onProgress: options.onProgress})
}

function publishTarget(repository: string, given: string | undefined): ImageReference {
  try {
    return parseRepository(repository)
  } catch (error) {
    if (given === undefined && error instanceof UsageError)
      throw new UsageError(`no registry to publish to: ${error.message}`, {
        suggestion: 'pass --to REGISTRY/REPOSITORY, or set image.repository in mlops.yaml to a registry path',
      })
    throw error
  }
}

/**
 * Publishes a stored version as a model image: pulled and verified into a
 * private temporary folder, packed into one reproducible layer, pushed
 * (blobs the registry already has are not sent again), then recorded in the
 * store beside the version. The same version always gives the same digest.
 */
export async function publishModel(
  store: ModelStore,
  ref: ModelRef,
  target: ImageReference,
  auth: RegistryAuth | undefined,
  options: {tag?: string; onProgress?: (text: string) => void} = {},
): Promise<PublishResult> {
  const started = Date.now()
  const manifest = await store.resolve(ref)
  const tag = options.tag ?? manifest.version
  if (!TAG.test(tag))
    throw new UsageError(`"${tag}" is not an image tag: letters, digits, _ . - (up to 128), not starting with . or -`, {
      suggestion: 'pass --tag',
    })
  const dir = await ownTempDir('mlops-publish-')
  try {
    options.onProgress?.(`Pulling ${manifest.name}@${manifest.version}`)
    // The reference set goes in too: serve answers it at warm-up from the image volume as it does from the loader's copy.
    const reference = await store.reference(manifest)
    const pulled = await store.pull({
      manifest,
      destination: join(dir, 'model'),
      labelsDestination: manifest.labels ? join(dir, 'labels') : undefined,
      referenceDestination: reference ? join(dir, 'reference') : undefined,
    })
    const manifestData = await store.manifestBytes(manifest)
    await writeFile(join(dir, 'manifest'), manifestData)
    options.onProgress?.('Packing the layer')
    const files = modelImageFiles(manifest, {
      model: pulled.path,
      labels: pulled.labelsPath,
      manifest: join(dir, 'manifest'),
      manifestSize: manifestData.length,
      ...(pulled.referencePath ? {reference: {path: pulled.referencePath, size: (await stat(pulled.referencePath)).size}} : {}),
    })
    const layer = await writeLayer(files, join(dir, 'layer.tar'), Math.floor(Date.parse(manifest.createdAt) / 1000) || 0)
    const image = modelImage(manifest, {path: join(dir, 'layer.tar'), ...layer})
    const client = new RegistryClient(target, auth)
    options.onProgress?.(`Pushing to ${target.registry}/${target.repository}`)
    const sent = await client.uploadBlob(layer.digest, layer.size, {path: join(dir, 'layer.tar')})
    await client.uploadBlob(sha256Of(image.config), image.config.length, {data: image.config})
    await client.putManifest(tag, image.manifest, MEDIA_TYPES.manifest, image.digest)
    const repository = `${target.registry}/${target.repository}`
    await store.recordPublication(manifest.name, manifest.version, {
      repository,
      digest: image.digest,
      tag,
      publishedAt: new Date().toISOString(),
      ...(reference ? {reference: reference.sha256} : {}),
    })
    return {
      model: `${manifest.name}@${manifest.version}`,
      sha256: manifest.sha256,
      repository,
      tag,
      digest: image.digest,
      reference: `${repository}@${image.digest}`,
      layer: {digest: layer.digest, size: layer.size, uploaded: sent === 'uploaded'},
      seconds: (Date.now() - started) / 1000,
    }
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}
