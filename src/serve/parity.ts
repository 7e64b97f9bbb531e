/**
 * Runtime parity: the version's reference set run through the runtime that serves it, every answer
 * measured against the one recorded. A model that loads is not yet a model that answers the same:
 * an onnxruntime upgrade has changed outputs before. Beyond the tolerance, serve refuses to become
 * ready (exit 8), naming the runtime that recorded and the runtime serving.
 */
import {readFile} from 'node:fs/promises'

import {IncompatibleError, IntegrityError, NotFoundError, PermissionError, UsageError} from '../errors.js'
import {type ReferenceOutput, type ReferenceRecord, parseReference} from '../store/references.js'
import {compareAnswers, formatDelta} from '../predict/compare-rules.js'
import {RowRefusedError, answerRows} from './answers.js'
import {type ServedModel, runtimeName} from './model.js'

/** The largest difference of any number in an answer that still counts as the same answer. */
export const DEFAULT_TOLERANCE = 1e-4

/** Row numbers named in a message, at most. */
const NAMED_ROWS = 5

export interface ParityResult {
  rows: number
  /** The runtime that computed the recorded answers. */
  recordedBy: string
  /** The runtime that answered now. */
  servedBy: string
  tolerance: number
  /** The largest difference of any number in any answer. */
  maxDelta: number
  /** Rows (from 1) whose answers differ beyond the tolerance or whose label changed. */
  drifted: number[]
  /** Outputs that only one side has (then every row has drifted). */
  unmatched: string[]
}

/**
 * Reads a reference file as strictly as any input: it must be the record of this very model file
 * (its sha256), well formed, and its rows must hash to its digest.
 */
export async function readReferenceFile(
  path: string,
  expected: {sha256: string; name?: string; version?: string},
): Promise<ReferenceRecord> {
  const data = await readFile(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT')
      throw new NotFoundError(`reference set ${path} does not exist`, {
        suggestion: 'the loader writes it (--reference-to); check MODEL_REFERENCE_FILEPATH / --reference',
      })
    if (error.code === 'EACCES') throw new PermissionError(`reference set ${path} is not readable`)
    throw new IntegrityError(`reference set ${path} cannot be read: ${error.code ?? error.message}`)
  })
  try {
    return parseReference(data, expected)
  } catch (error) {
    throw new IntegrityError(`reference set ${path} is not this model's: ${(error as Error).message}`, {
      suggestion: 'serve it with the reference the loader wrote for the same version',
    })
  }
}

/** Measures the served model's answers against the recorded ones. */
export async function measureParity(model: ServedModel, reference: ReferenceRecord, tolerance: number): Promise<ParityResult> {
  const servedBy = runtimeName(model)
  const answers = await answerRows(model, reference.inputs).catch((error: unknown) => {
    if (!(error instanceof RowRefusedError)) throw error
    throw new IncompatibleError(
      `${servedBy} refuses row ${error.row} of the reference set that ${reference.runtime} answered: ${error.reason}`,
    )
  })
  // Every row compared, none judged here: a drifted row is a changed label, a number beyond the
  // tolerance, or an output that only one side has (then every row has drifted).
  // Labels are compared where both sides give them the same way: a server without the labels file
  // answers class numbers where the record has names; its probabilities are still compared.
  const sameLabels = answers.every((answer, index) => typeof answer.label === typeof reference.outputs[index].label)
  const withoutLabels = (outputs: ReferenceOutput[]) => outputs.map(({prediction}) => ({prediction}))
  const [recorded, answered] = sameLabels ? [reference.outputs, answers] : [withoutLabels(reference.outputs), withoutLabels(answers)]
  const comparison = compareAnswers(
    reference.inputs,
    {outputs: recorded},
    {outputs: answered},
    {
      worst: answers.length,
      thresholds: {},
    },
  )
  const drifted =
    comparison.unmatched.length > 0
      ? answers.map((_, index) => index + 1)
      : comparison.worst
          .filter(row => row.agree === false || row.delta > tolerance)
          .map(row => row.row)
          .sort((x, y) => x - y)
  const {maxDelta, unmatched} = comparison
  return {rows: answers.length, recordedBy: reference.runtime, servedBy, tolerance, maxDelta, drifted, unmatched}
}

/** Throws exit 8 when the answers drifted, naming both runtimes and the first rows. */
export function requireParity(parity: ParityResult, model: string): void {
  if (parity.drifted.length === 0) return
  const rows = parity.drifted.slice(0, NAMED_ROWS).join(', ') + (parity.drifted.length > NAMED_ROWS ? ', ...' : '')
  throw new IncompatibleError(
    `${model} answers its reference set differently: ${parity.drifted.length} of ${parity.rows} rows differ beyond ${parity.tolerance} (rows ${rows}; ${
      parity.unmatched.length > 0
        ? `outputs only one side has: ${parity.unmatched
            .slice(0, 3)
            .map(name => name.slice(0, 40))
            .join(', ')}`
        : `max |Δ| ${formatDelta(parity.maxDelta)}`
    }); recorded by ${parity.recordedBy}, serving ${parity.servedBy}`,
    {
      suggestion: `serve it on the runtime that recorded the reference, or, once the new answers are accepted, record them again (mlops model reference add ${model} FILE --replace)`,
    },
  )
}

/** A tolerance as given (flag or MLOPS_REFERENCE_TOLERANCE): a finite number, 0 or more. */
export function parseTolerance(text: string): number {
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value) || value < 0)
    throw new UsageError(`--reference-tolerance "${text.slice(0, 40)}" is not a number of 0 or more`, {suggestion: 'e.g. 1e-4'})
  return value
}
