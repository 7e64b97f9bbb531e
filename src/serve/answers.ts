/**
 * A model's answers to rows, read the way `mlops serve` reads outputs (the label, and the
 * prediction: probabilities or the raw outputs). A reference set records these answers; serve's
 * parity check and `model compare` measure them against each other (predict/compare-rules.ts).
 */
import type {ReferenceOutput} from '../store/references.js'
import {InferenceError, type ServedModel, predict} from './model.js'
import {BadRequestError, batchToTensorData} from './tensors.js'

/** Rows per run; a chunk the model refuses (or fails on) is run row by row to name the row. */
const CHUNK_ROWS = 256

/** A row the model refused: `row` counts from 1. */
export class RowRefusedError extends Error {
  constructor(
    readonly row: number,
    readonly reason: string,
  ) {
    super(`row ${row} is refused by the model: ${reason}`)
    this.name = 'RowRefusedError'
  }
}

/** Whether the model gives labels: a classifier, or a model with a label output. */
export function givesLabels(model: ServedModel): boolean {
  return model.kind === 'classifier' || model.labelOutput !== undefined
}

/** The model's answers to the rows, in order; a row it refuses throws RowRefusedError naming it. */
export async function answerRows(model: ServedModel, inputs: number[][]): Promise<ReferenceOutput[]> {
  const labels = givesLabels(model)
  const answers: ReferenceOutput[] = []
  for (let start = 0; start < inputs.length; start += CHUNK_ROWS) {
    const chunk = inputs.slice(start, start + CHUNK_ROWS)
    const results = await runRows(model, chunk, labels).catch(async (error: unknown) => {
      if (!(error instanceof BadRequestError || error instanceof InferenceError)) throw error
      // Which row: run them one at a time.
      for (const [offset, row] of chunk.entries()) {
        await runRows(model, [row], labels).catch((rowError: unknown) => {
          throw new RowRefusedError(start + offset + 1, (rowError as Error).message.replace(/^row 0:? /, ''))
        })
      }

      throw error
    })
    answers.push(...results)
  }

  return answers
}

async function runRows(model: ServedModel, rows: number[][], withLabels: boolean): Promise<ReferenceOutput[]> {
  const {values, dims} = batchToTensorData(rows, model.input)
  const result = await predict(model, values, dims, {labels: withLabels})
  return result.prediction.map((prediction, i) => {
    const label = result.labels?.[i]
    return typeof label === 'string' || typeof label === 'number' ? {label, prediction} : {prediction}
  })
}
