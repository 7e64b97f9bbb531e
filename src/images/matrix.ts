/**
 * The compatibility matrix: model versions × API images, from what mlops image check recorded for
 * each version (verified.json). Images are told apart by ID; each is shown by the last name it was
 * checked under.
 */
import {formatTable} from '../cli/table.js'
import type {Verification, VersionVerifications} from '../store/model-store.js'

export interface MatrixImage {
  /** Column number in the text table, from 1. */
  column: number
  imageId: string
  /** The name it was last checked under. */
  image: string
  runtime: string
}

export interface MatrixCell {
  model: string
  version: string
  imageId: string
  ok: boolean
  reason?: string
  /** Rows of the reference set it answered as recorded (ok with a reference set). */
  rows?: number
  maxDelta?: number
  checkedAt: string
}

export interface CheckMatrix {
  store: string
  images: MatrixImage[]
  versions: {model: string; version: string; problem?: string}[]
  cells: MatrixCell[]
}

export function buildMatrix(store: string, rows: VersionVerifications[]): CheckMatrix {
  const latest = new Map<string, Verification>()
  for (const entry of rows.flatMap(row => row.verified))
    if ((latest.get(entry.imageId)?.checkedAt ?? '') <= entry.checkedAt) latest.set(entry.imageId, entry)
  const images = [...latest.values()]
    .sort((a, b) => a.image.localeCompare(b.image) || a.checkedAt.localeCompare(b.checkedAt))
    .map((entry, index) => ({column: index + 1, imageId: entry.imageId, image: entry.image, runtime: entry.runtime}))
  return {
    store,
    images,
    versions: rows.map(row => ({model: row.name, version: row.version, ...(row.problem ? {problem: row.problem} : {})})),
    cells: rows.flatMap(row =>
      row.verified.map(entry => ({
        model: row.name,
        version: row.version,
        imageId: entry.imageId,
        ok: entry.ok,
        ...(entry.reason ? {reason: entry.reason} : {}),
        ...(entry.parity ? {rows: entry.parity.rows, maxDelta: entry.parity.maxDelta} : {}),
        checkedAt: entry.checkedAt,
      })),
    ),
  }
}

/** The matrix as text: the images numbered, a row per version, then why each ✘ failed. */
export function formatMatrix(matrix: CheckMatrix): string {
  if (matrix.versions.length === 0) return `No models in ${matrix.store}.`
  if (matrix.images.length === 0)
    return `No version in ${matrix.store} was checked on an API image yet: mlops image check --model NAME@REF --image IMAGE`
  const cell = (model: string, version: string, imageId: string) => {
    const found = matrix.cells.find(c => c.model === model && c.version === version && c.imageId === imageId)
    if (!found) return '-'
    if (!found.ok) return '✘'
    return found.rows === undefined ? '✔ loads' : `✔ ${found.rows} rows`
  }

  const legend = formatTable(
    ['', 'IMAGE', 'ID', 'RUNTIME'],
    matrix.images.map(image => [`[${image.column}]`, image.image, image.imageId.slice(7, 19), image.runtime]),
  )
  const table = formatTable(
    ['VERSION', ...matrix.images.map(image => `[${image.column}]`)],
    matrix.versions.map(v => [
      `${v.model}@${v.version}`,
      ...matrix.images.map(image => (v.problem ? '?' : cell(v.model, v.version, image.imageId))),
    ]),
  )
  const column = new Map(matrix.images.map(image => [image.imageId, image.column]))
  const why = [
    ...matrix.cells.filter(c => !c.ok).map(c => `✘ ${c.model}@${c.version} on [${column.get(c.imageId)}]: ${c.reason ?? 'refused'}`),
    ...matrix.versions.filter(v => v.problem).map(v => `? ${v.model}@${v.version}: ${v.problem}`),
  ]
  return [legend, '', table, ...(why.length > 0 ? ['', ...why] : [])].join('\n')
}
