/**
 * A model version as an OCI image that a container runtime can mount as a
 * Kubernetes `image` volume: one uncompressed tar layer holding model.onnx,
 * labels.json (when there is one) and the store's manifest.json at its root,
 * and an OCI image config whose rootfs.diff_ids name that layer (containerd
 * 2.x mounts images, not artifacts with an empty config). Everything in it is
 * derived from the stored version, with fixed times and owners, so publishing
 * the same version twice gives the same digest.
 */
import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {open} from 'node:fs/promises'
import {basename} from 'node:path'

import type {ModelManifest} from '../store/manifest.js'
import {LABELS_PATH, MODEL_PATH, REFERENCE_PATH} from '../pod/contract.js'

export const MEDIA_TYPES = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
} as const

/** The CNCF ModelPack model-spec's artifact type, set on the manifest; the config stays an image config so runtimes mount it. */
export const MODEL_ARTIFACT_TYPE = 'application/vnd.cncf.model.manifest.v1+json'

/** The name of the store's manifest inside the image. */
export const IMAGE_MANIFEST_FILE = 'manifest.json'

export interface LayerFile {
  /** Name at the image's root. */
  name: string
  /** Where the bytes are on this machine. */
  path: string
  size: number
}

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  annotations?: Record<string, string>
}

export interface ModelImage {
  /** The layer as a file on this machine (an uncompressed tar), its digest and size. */
  layer: {path: string; digest: string; size: number}
  config: Buffer
  manifest: Buffer
  /** sha256:… of the manifest: the image's digest. */
  digest: string
}

const BLOCK = 512

/** A ustar header for a regular file: fixed owner, mode and time (reproducible layers). */
function tarHeader(name: string, size: number, mtime: number): Buffer {
  if (Buffer.byteLength(name) > 99) throw new Error(`tar entry name too long: ${name}`)
  const header = Buffer.alloc(BLOCK, 0)
  const field = (offset: number, length: number, value: string) => header.write(value, offset, length, 'ascii')
  const octal = (offset: number, length: number, value: number) => field(offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`)
  field(0, 100, name)
  octal(100, 8, 0o444)
  octal(108, 8, 0)
  octal(116, 8, 0)
  octal(124, 12, size)
  octal(136, 12, mtime)
  field(148, 8, '        ')
  field(156, 1, '0')
  field(257, 6, 'ustar\0')
  field(263, 2, '00')
  let sum = 0
  for (const byte of header) sum += byte
  field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `)
  return header
}

/** The files of a model image, in the pod contract's names (what the API container reads at /workdir). */
export function modelImageFiles(
  manifest: ModelManifest,
  paths: {model: string; labels?: string; manifest: string; manifestSize: number; reference?: {path: string; size: number}},
): LayerFile[] {
  return [
    {name: basename(MODEL_PATH), path: paths.model, size: manifest.size},
    ...(manifest.labels && paths.labels ? [{name: basename(LABELS_PATH), path: paths.labels, size: manifest.labels.size}] : []),
    ...(paths.reference ? [{name: basename(REFERENCE_PATH), ...paths.reference}] : []),
    {name: IMAGE_MANIFEST_FILE, path: paths.manifest, size: paths.manifestSize},
  ]
}

/** Writes the layer tar to `destination`, hashing it as it goes; returns its digest (which is also its diff_id: it is uncompressed). */
export async function writeLayer(files: LayerFile[], destination: string, mtime: number): Promise<{digest: string; size: number}> {
  const hash = createHash('sha256')
  const out = await open(destination, 'wx', 0o600)
  let size = 0
  const write = async (chunk: Buffer) => {
    hash.update(chunk)
    size += chunk.length
    await out.write(chunk)
  }

  try {
    for (const file of files) {
      await write(tarHeader(file.name, file.size, mtime))
      let copied = 0
      for await (const chunk of createReadStream(file.path, {highWaterMark: 1 << 20})) {
        copied += (chunk as Buffer).length
        await write(chunk as Buffer)
      }

      if (copied !== file.size) throw new Error(`${file.path} changed while it was packed (${copied} bytes, expected ${file.size})`)
      const pad = (BLOCK - (file.size % BLOCK)) % BLOCK
      if (pad > 0) await write(Buffer.alloc(pad, 0))
    }

    await write(Buffer.alloc(BLOCK * 2, 0))
    await out.sync()
  } finally {
    await out.close()
  }

  return {digest: `sha256:${hash.digest('hex')}`, size}
}

/** What a registry user sees of a model image: OCI and ModelPack annotations, and mlops' own. */
export function modelAnnotations(manifest: ModelManifest): Record<string, string> {
  const opsets = manifest.onnx?.opsetImports.map(opset => `${opset.domain || 'ai.onnx'}:${opset.version}`).join(',') || undefined
  return {
    'org.opencontainers.image.title': manifest.name,
    'org.opencontainers.image.version': manifest.version,
    'org.opencontainers.image.created': manifest.createdAt,
    'org.opencontainers.image.description': `${manifest.name}@${manifest.version}, an ONNX model published by mlops`,
    'org.cncf.model.name': manifest.name,
    'org.cncf.model.version': manifest.version,
    'org.cncf.model.format': manifest.format,
    'io.mlops.model.sha256': manifest.sha256,
    'io.mlops.model.size': String(manifest.size),
    ...(manifest.onnx?.irVersion === undefined ? {} : {'io.mlops.model.onnx.ir-version': String(manifest.onnx.irVersion)}),
    ...(opsets ? {'io.mlops.model.onnx.opsets': opsets} : {}),
  }
}

/** The image config and manifest for a written layer; JSON with sorted keys, so the digest depends on nothing but the content. */
export function modelImage(manifest: ModelManifest, layer: {path: string; digest: string; size: number}): ModelImage {
  const annotations = modelAnnotations(manifest)
  const config = canonicalJson({
    architecture: 'amd64',
    os: 'linux',
    created: manifest.createdAt,
    config: {Labels: annotations},
    rootfs: {type: 'layers', diff_ids: [layer.digest]},
    history: [{created: manifest.createdAt, created_by: `mlops model publish ${manifest.name}@${manifest.version}`}],
  })
  const body = canonicalJson({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.manifest,
    artifactType: MODEL_ARTIFACT_TYPE,
    config: {mediaType: MEDIA_TYPES.config, digest: sha256Of(config), size: config.length},
    layers: [
      {mediaType: MEDIA_TYPES.layer, digest: layer.digest, size: layer.size, annotations: {'org.opencontainers.image.title': 'model'}},
    ],
    annotations,
  })
  return {layer, config, manifest: body, digest: sha256Of(body)}
}

export function sha256Of(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}

function canonicalJson(value: unknown): Buffer {
  const sorted = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sorted)
    if (v && typeof v === 'object')
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map(key => [key, sorted((v as Record<string, unknown>)[key])]),
      )
    return v
  }

  return Buffer.from(JSON.stringify(sorted(value)))
}
