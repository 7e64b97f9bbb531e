/**
 * The rules of `mlops model compare`, apart from where the answers come from: label agreement,
 * the differences per output, the worst rows, the thresholds, and what a server's answers must be.
 */
import {UsageError} from '../errors.js'
import type {ReferenceOutput} from '../store/references.js'

/** One side's answers for the rows, and the class of each probability column when it is a classifier. */
export interface Answers {
  outputs: ReferenceOutput[]
  classes?: string[]
}

export interface Thresholds {
  /** Share of rows whose labels must be equal, 0 to 1. */
  minAgreement?: number
  /** Largest absolute difference allowed in any output of any row. */
  maxDelta?: number
}

/** One numeric output (a class's probability, a regressor's value), over all rows. */
export interface OutputDifference {
  /** `probability(CLASS)` for a classifier's column, else the output's path in the prediction: `prediction[0]`, `variable[0]`. */
  output: string
  /** Largest |A - B| over the rows. */
  max: number
  /** Mean |A - B| over the rows. */
  mean: number
  /** The row (1-based) of the largest difference (the first row when every row is the same). */
  row: number
}

export interface RowDifference {
  /** 1-based, as in the reference file. */
  row: number
  input: number[]
  a: ReferenceOutput
  b: ReferenceOutput
  /** Whether the labels are equal; absent when a side gives no labels. */
  agree?: boolean
  /** Largest |A - B| over the row's outputs. */
  delta: number
}

export interface ThresholdFailure {
  threshold: 'min-agreement' | 'max-delta'
  limit: number
  measured: number
  /** How many rows disagree (min-agreement) or differ by more than the limit (max-delta). */
  count: number
  /** The first of those rows (1-based), in row order. */
  rows: number[]
}

export interface Comparison {
  rows: number
  /** Share of rows whose labels are equal; null when a side gives no labels (regressors). */
  agreement: number | null
  /** Every row (1-based) whose labels differ. */
  disagreeing: number[]
  outputs: OutputDifference[]
  /** Largest |A - B| over every output and row; 0 when no output is compared. */
  maxDelta: number
  /** Outputs that only one side has, not compared. */
  unmatched: string[]
  /** The rows that differ most: disagreeing labels first, then by |Δ|. */
  worst: RowDifference[]
  thresholds: Thresholds
  /** The thresholds not met; empty when every one is (or none is given). */
  failures: ThresholdFailure[]
}

/** How many failing rows a message names. */
const NAMED_ROWS = 5

/** Compares B's answers with A's, row by row, and judges them by the thresholds. */
export function compareAnswers(inputs: number[][], a: Answers, b: Answers, options: {worst: number; thresholds: Thresholds}): Comparison {
  if (a.outputs.length !== inputs.length || b.outputs.length !== inputs.length)
    throw new Error(`answers for ${a.outputs.length} and ${b.outputs.length} rows, not ${inputs.length}`)
  const labelled = a.outputs.every(o => o.label !== undefined) && b.outputs.every(o => o.label !== undefined)
  const sums = new Map<string, OutputDifference & {sum: number}>()
  const unmatched = new Set<string>()
  const rows: RowDifference[] = inputs.map((input, i) => {
    const [left, right] = [numericOutputs(a.outputs[i].prediction, a.classes), numericOutputs(b.outputs[i].prediction, b.classes)]
    let delta = 0
    for (const [name, value] of left) {
      const other = right.get(name)
      if (other === undefined) {
        unmatched.add(name)
        continue
      }

      const difference = Math.abs(value - other)
      const output = sums.get(name) ?? {output: name, max: 0, mean: 0, row: i + 1, sum: 0}
      output.sum += difference
      if (difference > output.max) Object.assign(output, {max: difference, row: i + 1})
      sums.set(name, output)
      delta = Math.max(delta, difference)
    }

    for (const name of right.keys()) if (!left.has(name)) unmatched.add(name)
    const row: RowDifference = {row: i + 1, input, a: a.outputs[i], b: b.outputs[i], delta}
    if (labelled) row.agree = a.outputs[i].label === b.outputs[i].label
    return row
  })

  const disagreeing = rows.filter(row => row.agree === false).map(row => row.row)
  const outputs = [...sums.values()].map(({sum, ...output}) => ({...output, mean: sum / inputs.length}))
  const maxDelta = Math.max(0, ...outputs.map(o => o.max))
  const worst = rows
    .filter(row => row.agree === false || row.delta > 0)
    .sort((x, y) => Number(x.agree ?? true) - Number(y.agree ?? true) || y.delta - x.delta || x.row - y.row)
    .slice(0, options.worst)
  const comparison = {
    rows: inputs.length,
    agreement: labelled ? (inputs.length - disagreeing.length) / inputs.length : null,
    disagreeing,
    outputs,
    maxDelta,
    unmatched: [...unmatched].sort(),
    worst,
    thresholds: options.thresholds,
  }
  return {...comparison, failures: judge(comparison, rows, options.thresholds)}
}

function judge(comparison: Omit<Comparison, 'failures'>, rows: RowDifference[], thresholds: Thresholds): ThresholdFailure[] {
  const failures: ThresholdFailure[] = []
  const {minAgreement, maxDelta} = thresholds
  if (minAgreement !== undefined) {
    if (comparison.agreement === null)
      throw new UsageError('--min-agreement needs labels from both sides, and one gives none (a regressor or a model without labels)', {
        suggestion: 'use --max-delta for the outputs',
      })
    if (comparison.agreement < minAgreement) {
      const {disagreeing} = comparison
      failures.push({
        threshold: 'min-agreement',
        limit: minAgreement,
        measured: comparison.agreement,
        count: disagreeing.length,
        rows: disagreeing.slice(0, NAMED_ROWS),
      })
    }
  }

  if (maxDelta !== undefined && comparison.maxDelta > maxDelta) {
    const over = rows.filter(row => row.delta > maxDelta).map(row => row.row)
    failures.push({
      threshold: 'max-delta',
      limit: maxDelta,
      measured: comparison.maxDelta,
      count: over.length,
      rows: over.slice(0, NAMED_ROWS),
    })
  }

  return failures
}

/** The failures as one line: the threshold, what was measured, and the first rows. */
export function describeFailures(failures: ThresholdFailure[], rows: number): string {
  return failures
    .map(failure => {
      const named = `row${failure.rows.length === 1 ? '' : 's'} ${failure.rows.join(', ')}${failure.count > failure.rows.length ? ', ...' : ''}`
      return failure.threshold === 'min-agreement'
        ? `agreement ${formatShare(failure.measured)} is below --min-agreement ${failure.limit}: ${failure.count} of ${rows} rows disagree (${named})`
        : `max |Δ| ${formatDelta(failure.measured)} is above --max-delta ${failure.limit}: ${failure.count} of ${rows} rows differ by more (${named})`
    })
    .join('; ')
}

export function formatShare(share: number): string {
  return String(Number(share.toFixed(4)))
}

export function formatDelta(delta: number): string {
  return delta === 0 ? '0' : delta.toPrecision(3)
}

/**
 * The numbers of a prediction by name: a classifier's probabilities by class
 * (`probability(setosa)`), anything else by its path (`prediction[0]`, `variable[0]`).
 * Strings and booleans are labels, not differences: left out.
 */
export function numericOutputs(prediction: unknown, classes?: string[]): Map<string, number> {
  const found = new Map<string, number>()
  if (classes && Array.isArray(prediction) && prediction.length === classes.length) {
    prediction.forEach((value, i) => {
      if (typeof value === 'number') found.set(`probability(${classes[i]})`, value)
    })
    return found
  }

  const walk = (value: unknown, path: string): void => {
    if (typeof value === 'number') found.set(path, value)
    else if (Array.isArray(value)) value.forEach((item, i) => walk(item, `${path}[${i}]`))
    else if (typeof value === 'object' && value !== null) for (const [key, item] of Object.entries(value)) walk(item, `${path}.${key}`)
  }

  if (typeof prediction === 'object' && prediction !== null && !Array.isArray(prediction))
    for (const [key, item] of Object.entries(prediction)) walk(item, key)
  else walk(prediction, 'prediction')
  return found
}

/** How deep a server's prediction for one row may nest (several outputs, each a tensor). */
const MAX_DEPTH = 8

/**
 * The per-row answers in a server's body for `rows` rows, read strictly: `{"prediction": [...]}`
 * with one entry per row (/predict/label answers one row with the label itself); predictions of
 * finite numbers, labels that are strings or numbers. Anything else is the server's fault, said so.
 */
export function serverAnswers(body: unknown, rows: number, kind: 'prediction' | 'label', where: string): unknown[] {
  const hint = {suggestion: 'check --url: it must be a running mlops serve (or another server of the model-load API)'}
  if (typeof body !== 'object' || body === null || Array.isArray(body) || !('prediction' in body))
    throw new UsageError(`${where} answered ${describeBody(body)}, not {"prediction": [...]}`, hint)
  const {prediction} = body
  const answers = kind === 'label' && rows === 1 && !Array.isArray(prediction) ? [prediction] : prediction
  if (!Array.isArray(answers) || answers.length !== rows)
    throw new UsageError(
      `${where} answered ${Array.isArray(answers) ? `${answers.length} predictions` : describeBody(answers)} for ${rows} rows`,
      hint,
    )
  answers.forEach((answer, i) => {
    const valid =
      kind === 'label' ? typeof answer === 'string' || (typeof answer === 'number' && Number.isFinite(answer)) : isNumericTensor(answer, 0)
    if (!valid)
      throw new UsageError(
        `${where} answered row ${i + 1} with ${describeBody(answer)}, not ${kind === 'label' ? 'a label' : 'numbers'}`,
        hint,
      )
  })
  return answers
}

function isNumericTensor(value: unknown, depth: number): boolean {
  if (typeof value === 'number') return Number.isFinite(value)
  if (depth >= MAX_DEPTH || typeof value !== 'object' || value === null) return false
  const items = Array.isArray(value) ? value : Object.values(value)
  return items.length > 0 && items.every(item => isNumericTensor(item, depth + 1))
}

function describeBody(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  return `${typeof body === 'string' ? 'text' : 'JSON'} ${JSON.stringify((text ?? String(body)).slice(0, 60))}`
}
