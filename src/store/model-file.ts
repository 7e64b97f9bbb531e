import {readFile, stat} from 'node:fs/promises'
import {extname} from 'node:path'

import {IntegrityError, NotFoundError, UsageError} from '../errors.js'
import {InvalidOnnxError, type OnnxInfo, readOnnxInfoFromFile} from '../onnx/model-info.js'
import {zipMapClassCountOfFile} from '../onnx/zipmap.js'
import {STORED_FILE_NAME} from './manifest.js'

/** A model file checked before any byte is sent to a store. */
export interface InspectedModel {
  path: string
  size: number
  /** Its object name inside the version folder: model.onnx, model.bin, ... */
  storedName: string
  onnx?: OnnxInfo
  /** Class index → label. */
  labels?: Record<string, string>
}

export async function inspectModelFile(path: string, labelsPath?: string): Promise<InspectedModel> {
  const info = await stat(path).catch(() => undefined)
  if (!info) throw new NotFoundError(`model file ${path} does not exist`)
  if (info.isDirectory())
    throw new UsageError(`${path} is a folder, not a model file`, {suggestion: 'pass the model file itself, e.g. model.onnx'})
  if (!info.isFile()) throw new UsageError(`${path} is not a regular file`)
  if (info.size === 0) throw new IntegrityError(`model file ${path} is empty`)

  const extension = extname(path).toLowerCase()
  // The stored name is read back by every pull: only an extension that keeps it a plain file name.
  const storedName = STORED_FILE_NAME.test(`model${extension}`) && extension !== '' ? `model${extension}` : 'model.bin'
  const model: InspectedModel = {path, size: info.size, storedName}
  if (extension === '.onnx') {
    try {
      model.onnx = readOnnxInfoFromFile(path)
    } catch (error) {
      if (error instanceof InvalidOnnxError)
        throw new IntegrityError(`${path}: ${error.message}`, {
          suggestion: 'export the model again (e.g. skl2onnx, torch.onnx.export) and check it with onnx.checker',
        })
      throw error
    }
  }

  if (labelsPath !== undefined) {
    model.labels = await readLabels(labelsPath)
    const classes = model.onnx && (statedClassCount(model.onnx) ?? zipMapClassCountOfFile(path))
    const mismatch = classes && labelsMismatch(model.labels, classes)
    if (mismatch)
      throw new UsageError(`labels file ${labelsPath} does not fit ${path}: ${mismatch}`, {
        suggestion: 'give one label per class, indexed from 0',
      })
  }
  return model
}

/** Accepts {"0": "setosa", ...} or ["setosa", ...]; returns the index → label form. */
export async function readLabels(path: string): Promise<Record<string, string>> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw new NotFoundError(`labels file ${path} does not exist`)
    if (error.code === 'EISDIR') throw new UsageError(`labels file ${path} is a folder`)
    throw error
  })
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new UsageError(`labels file ${path} is not valid JSON: ${(error as Error).message}`, {
      suggestion: 'use {"0": "setosa", "1": "versicolor"} or ["setosa", "versicolor"]',
    })
  }

  const entries = Array.isArray(value) ? value.map((label, index) => [String(index), label] as const) : Object.entries(value ?? 'x')
  const wrongShape =
    typeof value !== 'object' ||
    value === null ||
    entries.length === 0 ||
    entries.some(([index, label]) => !/^\d+$/.test(index) || typeof label !== 'string')
  if (wrongShape) {
    throw new UsageError(`labels file ${path} must map class indexes to label strings`, {
      suggestion: 'use {"0": "setosa", "1": "versicolor"} or ["setosa", "versicolor"]',
    })
  }

  return Object.fromEntries(entries)
}

/**
 * Whether a labels map names exactly the classes 0..classes-1: a labels file
 * with fewer or more classes than the model would serve wrong answers
 * ("a", 2) without a word. Undefined when it fits.
 */
export function labelsMismatch(labels: Record<string, string>, classes: number): string | undefined {
  const indexes = Object.keys(labels)
    .map(Number)
    .sort((a, b) => a - b)
  if (indexes.length === classes && indexes.every((index, i) => index === i)) return undefined
  const named = `${indexes.slice(0, 5).join(', ')}${indexes.length > 5 ? ', ...' : ''}`
  return `the labels name ${indexes.length} class${indexes.length === 1 ? '' : 'es'} (${named}), the model has ${classes} (0 to ${classes - 1})`
}

/** The class count a model states in its signature: the last axis of its probabilities output, when fixed. */
export function statedClassCount(info: OnnxInfo): number | undefined {
  const floats = info.outputs.filter(o => o.kind === 'tensor' && (o.elemType === 'float' || o.elemType === 'double'))
  const probabilities =
    floats.find(o => /prob|score/i.test(o.name)) ?? (floats.length === 1 && info.outputs.length === 1 ? floats[0] : undefined)
  const last = probabilities?.shape?.at(-1)
  return typeof last === 'number' && last > 1 ? last : undefined
}
