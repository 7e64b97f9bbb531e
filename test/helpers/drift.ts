import {createHash} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'

/**
 * A reference record as a store holds it, with other answers recorded by another runtime (the
 * first `rows` rows' first probability moved by `by`), and a digest that fits them: what an
 * onnxruntime upgrade that changed outputs would look like to a check.
 */
export function seedDrift(path: string, destination: string, rows: number, by = 0.01): void {
  const record = JSON.parse(readFileSync(path, 'utf8'))
  record.runtime = 'onnxruntime-node 1.14.0'
  for (const output of record.outputs.slice(0, rows)) output.prediction[0] += by
  const canonical = Buffer.from(
    JSON.stringify({modelSha256: record.modelSha256, runtime: record.runtime, inputs: record.inputs, outputs: record.outputs}),
  )
  record.sha256 = createHash('sha256').update(canonical).digest('hex')
  record.size = canonical.length
  writeFileSync(destination, `${JSON.stringify(record)}\n`)
}
