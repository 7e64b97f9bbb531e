import {existsSync} from 'node:fs'

import {IncompatibleError} from '../errors.js'
import type {RuntimeSupport} from '../onnx/runtime-support.js'
import type {ModelManifest} from '../store/manifest.js'
import {DEFAULT_DOCKER_SOCKET, engineImageLabels} from './engine-labels.js'

/** Labels an API image carries so that anyone can tell which models it runs. */
export const RUNTIME_LABELS = {
  component: 'io.mlops.component',
  runtime: 'io.mlops.onnxruntime.version',
  irVersion: 'io.mlops.onnx.ir-version.max',
  /** Comma-separated domain=opset pairs, e.g. ai.onnx=26,ai.onnx.ml=5. */
  opsets: 'io.mlops.onnx.opsets.max',
} as const

/** Operator domains that ship inside ONNX Runtime itself (contrib operators), whose versions are not probed. */
const BUILT_IN_DOMAINS = new Set([
  'com.microsoft',
  'com.microsoft.nchwc',
  'com.microsoft.experimental',
  'ai.onnx.preview.training',
  'ai.onnx.training',
])

export function runtimeLabels(support: RuntimeSupport): Record<string, string> {
  return {
    [RUNTIME_LABELS.runtime]: support.runtime,
    [RUNTIME_LABELS.irVersion]: String(support.irVersion),
    [RUNTIME_LABELS.opsets]: Object.entries(support.opsets)
      .map(([domain, version]) => `${domain}=${version}`)
      .join(','),
  }
}

/** Reads the runtime labels back; undefined when an image does not carry them (not built by mlops). */
export function supportFromLabels(labels: Record<string, string> | undefined): RuntimeSupport | undefined {
  const runtime = labels?.[RUNTIME_LABELS.runtime]
  const ir = Number(labels?.[RUNTIME_LABELS.irVersion])
  const opsets = labels?.[RUNTIME_LABELS.opsets]
  if (!runtime || !Number.isInteger(ir) || !opsets) return undefined
  return {
    runtime,
    irVersion: ir,
    opsets: Object.fromEntries(
      opsets
        .split(',')
        .map(pair => pair.split('='))
        .map(([domain, version]) => [domain, Number(version)]),
    ),
  }
}

export interface Compatibility {
  compatible: boolean
  /** One sentence per problem, naming what the model needs and what the runtime has. */
  reasons: string[]
}

/**
 * The compatibility guard: can a runtime load a model, judged from the
 * model's manifest (IR version, opset imports) and the runtime's support.
 * Deploy calls it before any rollout; `mlops image check` shows it.
 */
export function checkCompatibility(
  manifest: Pick<ModelManifest, 'name' | 'onnx' | 'version'>,
  support: RuntimeSupport,
  runtimeName = `onnxruntime ${support.runtime}`,
): Compatibility {
  const model = `${manifest.name}@${manifest.version}`
  if (!manifest.onnx) return {compatible: false, reasons: [`${model} is not an ONNX model; the API image serves ONNX models`]}
  const reasons: string[] = []
  if (manifest.onnx.irVersion > support.irVersion) {
    reasons.push(`${model} is ONNX IR version ${manifest.onnx.irVersion}; ${runtimeName} loads IR versions up to ${support.irVersion}`)
  }

  for (const {domain, version} of manifest.onnx.opsetImports) {
    const max = support.opsets[domain]
    if (max === undefined) {
      if (!BUILT_IN_DOMAINS.has(domain))
        reasons.push(`${model} uses operator domain ${domain} (opset ${version}), which ${runtimeName} does not provide`)
    } else if (version > max) {
      reasons.push(`${model} needs opset ${version} of ${domain}; ${runtimeName} supports up to opset ${max}`)
    }
  }

  return {compatible: reasons.length === 0, reasons}
}

/** The guard as deploy and image check use it: exit 8 with every reason, and what was not done. */
export function requireCompatible(
  manifest: Pick<ModelManifest, 'name' | 'onnx' | 'version'>,
  support: RuntimeSupport,
  runtimeName: string,
  notDone?: string,
): void {
  const {compatible, reasons} = checkCompatibility(manifest, support, runtimeName)
  if (compatible) return
  throw new IncompatibleError(`${reasons.join('; ')}${notDone ? `; ${notDone}` : ''}`, {
    suggestion:
      "export the model for the runtime's opsets (e.g. target_opset in skl2onnx), or build the API image with a newer ONNX Runtime",
  })
}

/**
 * What the API image that is about to be deployed can run: its io.mlops.*
 * labels when the image is in a reachable Docker engine (the image that was
 * built or pulled here), else the ONNX Runtime of this CLI, which is the one
 * `mlops image build api` packs. `source` says which was used.
 */
export async function runtimeSupportFor(apiImage: string): Promise<{support: RuntimeSupport; source: string}> {
  try {
    // No engine to ask (no DOCKER_HOST, no default socket): do not even load the Docker client.
    if (!process.env.DOCKER_HOST && !existsSync(DEFAULT_DOCKER_SOCKET)) throw new Error('no Docker engine')
    // One request where the engine allows it; dockerode (loaded only then) for ssh:// and TLS engines.
    let labels = await engineImageLabels(apiImage)
    if (labels === undefined) {
      const {connectDocker, imageLabels} = await import('./docker.js')
      labels = await imageLabels(await connectDocker(), apiImage)
    }
    const fromLabels = labels && supportFromLabels(labels)
    if (fromLabels) return {support: fromLabels, source: `${apiImage} (onnxruntime ${fromLabels.runtime})`}
  } catch {
    // no engine here, or the image is not in it: fall back to the runtime this CLI packs
  }

  const {installedRuntimeSupport} = await import('../onnx/runtime-support.js')
  const support = await installedRuntimeSupport()
  return {support, source: `onnxruntime ${support.runtime}`}
}
