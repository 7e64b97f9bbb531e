import {UsageError} from '../errors.js'

/**
 * Rows to send, from --data JSON, a --file (JSON, JSON Lines or CSV) or stdin: `{"data": [...]}`,
 * a plain array of rows, one row of numbers, one JSON row per line, or CSV with one row per line
 * (a header line of names is skipped). Every row has the same number of values.
 */
export function parseRows(text: string, source: string): number[][] {
  const trimmed = text.trim()
  if (trimmed === '') throw new UsageError(`${source} is empty: give rows as JSON ({"data": [[...]]}) or CSV`)
  const rows = trimmed.startsWith('{') || trimmed.startsWith('[') ? jsonRows(trimmed, source) : csvRows(trimmed, source)
  if (rows.length === 0) throw new UsageError(`${source} has no rows`)
  const width = rows[0].length
  rows.forEach((row, i) => {
    if (row.length !== width) throw new UsageError(`${source}: row ${i + 1} has ${row.length} values, row 1 has ${width}`)
  })
  return rows
}

function jsonRows(text: string, source: string): number[][] {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    value = jsonLines(text)
    if (value === undefined)
      throw new UsageError(`${source} is not valid JSON: ${(error as Error).message}`, {
        suggestion: 'e.g. {"data": [[5.1, 3.5, 1.4, 0.2]]} or [[5.1, 3.5, 1.4, 0.2]]',
      })
  }

  const data = value && typeof value === 'object' && !Array.isArray(value) ? (value as {data?: unknown}).data : value
  if (!Array.isArray(data)) throw new UsageError(`${source}: expected {"data": [[...]]} or a list of rows`)
  if (data.length === 0) throw new UsageError(`${source} has no rows`)
  const rows = data.every(v => typeof v === 'number') ? [data] : data
  return rows.map((row, i) => {
    if (!Array.isArray(row) || !row.every(v => typeof v === 'number' && Number.isFinite(v)))
      throw new UsageError(`${source}: row ${i + 1} is not a list of numbers`)
    if (row.length === 0) throw new UsageError(`${source}: row ${i + 1} is empty`)
    return row as number[]
  })
}

/** JSON Lines: one row (a JSON list) per line; undefined when the text is not that. */
function jsonLines(text: string): unknown[] | undefined {
  const lines = text.split(/\r?\n/).filter(line => line.trim() !== '')
  if (lines.length < 2 || !lines.every(line => line.trimStart().startsWith('['))) return undefined
  try {
    return lines.map(line => JSON.parse(line) as unknown)
  } catch {
    return undefined
  }
}

function csvRows(text: string, source: string): number[][] {
  const lines = text.split(/\r?\n/).filter(line => line.trim() !== '')
  const rows: number[][] = []
  lines.forEach((line, i) => {
    const cells = line.split(',').map(cell => cell.trim())
    // Decimal numbers only: an empty cell is not 0, and 0x10 is not 16.
    const numbers = cells.map(cell => (/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(cell) ? Number(cell) : Number.NaN))
    if (numbers.some(n => !Number.isFinite(n))) {
      // A first line of names is a header.
      if (i === 0 && cells.some(cell => /[A-Za-z_]/.test(cell))) return
      throw new UsageError(`${source}: line ${i + 1} has a value that is not a number: ${line.slice(0, 60)}`)
    }

    rows.push(numbers)
  })
  return rows
}
