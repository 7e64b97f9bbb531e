import {readFileSync} from 'node:fs'
import {createRequire} from 'node:module'

import {encodeLenField, encodeVarintField} from './wire.js'
import {disableRuntimeTelemetry} from './ort-env.js'
import {packagePath} from '../util/package-root.js'

/** What an ONNX Runtime build can load: the highest IR version and the highest opset per operator domain. */
export interface RuntimeSupport {
  runtime: string
  irVersion: number
  /** Highest opset per domain (ai.onnx, ai.onnx.ml). */
  opsets: Record<string, number>
}

const PROBED_DOMAINS = ['ai.onnx', 'ai.onnx.ml']

/**
 * Asks the installed onnxruntime-node what it supports, by loading tiny
 * models (one Identity node) stamped with ever higher IR versions and opsets:
 * the answer comes from the runtime itself, not from a table that drifts.
 * About 20 session creations; used when an image is built and checked.
 */
export async function probeRuntimeSupport(): Promise<RuntimeSupport> {
  disableRuntimeTelemetry()
  const ort = await import('onnxruntime-node')
  const loads = async (model: Buffer) => {
    try {
      await (await ort.InferenceSession.create(model, {logSeverityLevel: 4})).release()
      return true
    } catch {
      return false
    }
  }

  const support: RuntimeSupport = {runtime: ort.env.versions.common ?? 'unknown', irVersion: 0, opsets: {}}
  support.irVersion = await highest(7, 64, ir => loads(probeModel(ir, {'ai.onnx': 13})))
  for (const domain of PROBED_DOMAINS) {
    support.opsets[domain] = await highest(1, 64, version =>
      loads(probeModel(7, domain === 'ai.onnx' ? {'ai.onnx': version} : {'ai.onnx': 13, [domain]: version})),
    )
  }

  return support
}

/** Where the build keeps its probe's answer (scripts/runtime-support.js). */
export const SAVED_SUPPORT = packagePath('dist', 'onnx', 'support.json')

/** The version in onnxruntime-node's own package.json, read without loading the runtime. */
export function installedRuntimePackage(): string | undefined {
  try {
    return (createRequire(import.meta.url)('onnxruntime-node/package.json') as {version?: string}).version
  } catch {
    return undefined
  }
}

/**
 * What the installed runtime supports, for the compatibility guard: the
 * build's probe of this same onnxruntime-node version when there is one (no
 * runtime load, no probe: 60 ms less per deploy), else probed now.
 */
export async function installedRuntimeSupport(): Promise<RuntimeSupport> {
  try {
    const saved = JSON.parse(readFileSync(SAVED_SUPPORT, 'utf8')) as {package?: string; support?: RuntimeSupport}
    if (saved.support && saved.package && saved.package === installedRuntimePackage()) return saved.support
  } catch {
    // not built, or from another version: probe
  }

  return probeRuntimeSupport()
}

/** The largest n in [low, high] with ok(n), given ok(low) and ok monotone decreasing. */
async function highest(low: number, high: number, ok: (n: number) => Promise<boolean>): Promise<number> {
  if (!(await ok(low))) return 0
  let [lo, hi] = [low, high]
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2)
    if (await ok(mid)) lo = mid
    else hi = mid - 1
  }

  return lo
}

function probeModel(irVersion: number, opsets: Record<string, number>): Buffer {
  const valueInfo = (name: string) =>
    Buffer.concat([
      encodeLenField(1, name),
      encodeLenField(
        2,
        encodeLenField(1, Buffer.concat([encodeVarintField(1, 1), encodeLenField(2, encodeLenField(1, encodeVarintField(1, 1)))])),
      ),
    ])
  const node = encodeLenField(1, Buffer.concat([encodeLenField(1, 'x'), encodeLenField(2, 'y'), encodeLenField(4, 'Identity')]))
  const graph = Buffer.concat([node, encodeLenField(2, 'probe'), encodeLenField(11, valueInfo('x')), encodeLenField(12, valueInfo('y'))])
  const imports = Object.entries(opsets).map(([domain, version]) =>
    encodeLenField(8, Buffer.concat([encodeLenField(1, domain === 'ai.onnx' ? '' : domain), encodeVarintField(2, version)])),
  )
  return Buffer.concat([encodeVarintField(1, irVersion), ...imports, encodeLenField(7, graph)])
}
