/**
 * mlops model compare: two versions run in-process on the same rows (A's reference set, or a
 * file), or A in-process against a live server's answers for them; judged by compare-rules.ts.
 */
import {formatTable} from '../cli/table.js'
import {UnavailableError, UsageError} from '../errors.js'
import type {ModelManifest} from '../store/manifest.js'
import type {ModelStore} from '../store/model-store.js'
import type {ModelRef} from '../store/names.js'
import type {Endpoint} from '../targets/target.js'
import {
  type Answers,
  type Comparison,
  type Thresholds,
  compareAnswers,
  describeFailures,
  formatDelta,
  formatShare,
  serverAnswers,
} from './compare-rules.js'
import {sendOnce} from './load.js'
import {acceptedBody} from './predict.js'
import {type ModelRun, readReferenceRows, runVersion} from './reference.js'

/** Rows per request to a server. */
const SERVER_CHUNK_ROWS = 256

export interface CompareOptions {
  a: ModelRef
  /** The other version; absent: the live server that `server` opens. */
  b?: ModelRef
  /** Rows from this file instead of A's reference set. */
  reference?: string
  /** How many of the rows that differ most to show. */
  worst: number
  thresholds: Thresholds
}

/** One side: a version run in-process, or a server. */
export interface CompareSide {
  ref?: string
  name?: string
  version?: string
  sha256?: string
  /** In-process: the onnxruntime that ran it. */
  runtime?: string
  /** A server: its URL (and, through a port-forward, the pod). */
  url?: string
  pod?: string
}

export interface CompareResult extends Comparison {
  a: CompareSide
  b: CompareSide
  /** Where the rows came from: A's reference set or the file given. */
  source: {kind: 'reference' | 'file'; name: string}
  /** With A's reference set: A now against the outputs recorded with it (another runtime may answer otherwise). */
  recorded?: {runtime: string; agreement: number | null; maxDelta: number}
}

/**
 * Reads the rows, runs A and B (or asks the server) at once, and compares B's answers with A's.
 * The thresholds are judged in the result (`failures`); `assertAgreement` turns them into exit 12.
 */
export async function compareModels(store: ModelStore, options: CompareOptions, server?: () => Promise<Endpoint>): Promise<CompareResult> {
  const fileRows = options.reference === undefined ? undefined : await readReferenceRows(options.reference)
  const manifestA = await store.resolve(options.a)
  const manifestB = options.b ? await store.resolve(options.b) : undefined
  if (manifestB) checkSameInput(manifestA, manifestB)
  const recorded = fileRows ? undefined : await store.reference(manifestA)
  const inputs = fileRows ?? recorded?.inputs
  if (!inputs)
    throw new UsageError(`${refOf(manifestA)} has no reference set: there are no rows to compare on`, {
      suggestion: `record one (mlops model reference add ${refOf(manifestA)} FILE) or pass --reference FILE`,
    })
  const source = fileRows
    ? {kind: 'file' as const, name: options.reference!}
    : {kind: 'reference' as const, name: `${refOf(manifestA)} reference set`}

  const [runA, b] = await Promise.all([
    runVersion(store, manifestA, inputs, source.name),
    manifestB
      ? runVersion(store, manifestB, inputs, source.name).then(run => ({run, side: sideOf(manifestB, run)}))
      : askServer(server!, inputs),
  ])
  // A server answers in the order of A's classes: its columns are named as A's.
  const answersB: Answers = manifestB ? b.run : {...b.run, classes: runA.classes}
  const comparison = compareAnswers(inputs, runA, answersB, {worst: options.worst, thresholds: options.thresholds})
  const result: CompareResult = {a: sideOf(manifestA, runA), b: b.side, source, ...comparison}
  if (recorded) {
    const drift = compareAnswers(inputs, {outputs: recorded.outputs, classes: runA.classes}, runA, {worst: 0, thresholds: {}})
    result.recorded = {runtime: recorded.runtime, agreement: drift.agreement, maxDelta: drift.maxDelta}
  }

  return result
}

/** What the comparison found, as a person reads it: the figures, the outputs' differences, the worst rows. */
export function formatComparison(result: CompareResult): string {
  const b = result.b.ref ?? `${result.b.url}${result.b.pod ? ` (pod ${result.b.pod})` : ''}`
  const lines = [`${result.a.ref} vs ${b} on ${result.rows} rows (${result.source.name})`]
  const share = (agreement: number | null) => (agreement === null ? '- (no labels)' : formatShare(agreement))
  if (result.recorded) {
    const {runtime, agreement, maxDelta} = result.recorded
    lines.push(`  ${result.a.ref} now vs recorded (${runtime}): agreement ${share(agreement)}, max |Δ| ${formatDelta(maxDelta)}`)
  }

  lines.push(`agreement  ${share(result.agreement)}${result.agreement === null ? '' : ` (${result.disagreeing.length} rows disagree)`}`)
  if (result.outputs.length > 0)
    lines.push(
      formatTable(
        ['OUTPUT', 'MAX |Δ|', 'MEAN |Δ|', 'AT ROW'],
        result.outputs.map(o => [o.output, formatDelta(o.max), formatDelta(o.mean), o.max === 0 ? '-' : String(o.row)]),
      ),
    )
  if (result.unmatched.length > 0) lines.push(`not compared (one side only): ${result.unmatched.join(', ')}`)
  if (result.worst.length > 0)
    lines.push(
      formatTable(
        ['ROW', 'INPUT', 'A', 'B', '|Δ|'],
        result.worst.map(row => [String(row.row), row.input.join(','), answerText(row.a), answerText(row.b), formatDelta(row.delta)]),
      ),
    )
  return lines.join('\n')
}

function answerText(answer: {label?: number | string; prediction: unknown}): string {
  const numbers = JSON.stringify(answer.prediction, (_key, value: unknown) =>
    typeof value === 'number' ? Number(value.toFixed(3)) : value,
  )
  return answer.label === undefined ? numbers : `${answer.label} ${numbers}`
}

/** Exit 12 when a threshold failed, naming it, the figure measured and the first rows. */
export function failureMessage(result: CompareResult): string | undefined {
  return result.failures.length > 0 ? describeFailures(result.failures, result.rows) : undefined
}

function refOf(manifest: ModelManifest): string {
  return `${manifest.name}@${manifest.version}`
}

function sideOf(manifest: ModelManifest, run: ModelRun): CompareSide {
  return {ref: refOf(manifest), name: manifest.name, version: manifest.version, sha256: manifest.sha256, runtime: run.runtime}
}

/** Two models with fixed, different input widths cannot answer the same rows. */
function checkSameInput(a: ModelManifest, b: ModelManifest): void {
  const width = (manifest: ModelManifest) => manifest.onnx?.inputs[0]?.shape?.at(-1)
  const [left, right] = [width(a), width(b)]
  if (typeof left === 'number' && typeof right === 'number' && left > 0 && right > 0 && left !== right)
    throw new UsageError(
      `${refOf(a)} takes rows of ${left} values and ${refOf(b)} rows of ${right}: they cannot be compared on the same rows`,
      {
        suggestion: 'compare versions of models with the same input',
      },
    )
}

/** The server's answers for the rows: /predict, and /predict/label when it gives labels, a chunk of rows at a time. */
export async function askServer(
  open: () => Promise<Endpoint>,
  inputs: number[][],
): Promise<{run: {outputs: Answers['outputs']}; side: CompareSide}> {
  const endpoint = await open()
  try {
    const outputs: Answers['outputs'] = []
    let labelled = true
    for (let start = 0; start < inputs.length; start += SERVER_CHUNK_ROWS) {
      const rows = inputs.slice(start, start + SERVER_CHUNK_ROWS)
      const ask = async (path: '/predict' | '/predict/label'): Promise<unknown[] | undefined> => {
        const answer = await sendOnce({url: endpoint.url, endpoint: path, protocol: 'original', rows})
        // A model without labels (a regressor) refuses /predict/label: then only the predictions are compared.
        if (path === '/predict/label' && answer.status === 400) return undefined
        const where = `${new URL(path, endpoint.url).href} (rows ${start + 1}-${start + rows.length})`
        return serverAnswers(acceptedBody(answer), rows.length, path === '/predict' ? 'prediction' : 'label', where)
      }

      const predictions = (await ask('/predict'))!
      const labels: unknown[] | undefined = labelled ? await ask('/predict/label') : undefined
      labelled &&= labels !== undefined
      outputs.push(...predictions.map((prediction, i) => (labels ? {label: labels[i] as number | string, prediction} : {prediction})))
    }

    return {
      run: {outputs: labelled ? outputs : outputs.map(({prediction}) => ({prediction}))},
      side: {url: endpoint.url, ...(endpoint.pod ? {pod: endpoint.pod} : {})},
    }
  } catch (error) {
    // Through a tunnel (a port-forward), what the API server or the node said is the useful part.
    if (endpoint.lastError && error instanceof UnavailableError) throw endpoint.lastError
    throw error
  } finally {
    await endpoint.close()
  }
}
