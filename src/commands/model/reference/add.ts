import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../../cli/base-command.js'
import {storeFlags, storeFor} from '../../../cli/store-flags.js'
import {type ReferenceResult, addReference} from '../../../predict/reference.js'
import {parseModelRef} from '../../../store/names.js'
import {REFERENCE_MAX_BYTES, REFERENCE_MAX_ROWS} from '../../../store/references.js'
import {formatBytes} from '../../../util/text.js'

export default class ModelReferenceAdd extends BaseCommand<typeof ModelReferenceAdd> {
  static summary = 'Record a reference set (input rows and the outputs the model gives for them) beside a version.'

  static description = [
    `FILE holds input rows: a JSON list of rows, {"data": [...]}, JSON Lines or CSV with a header line, at most`,
    `${REFERENCE_MAX_ROWS} rows and ${formatBytes(REFERENCE_MAX_BYTES)}. The version is pulled (verified) and run in-process with`,
    `the installed onnxruntime; the rows, the outputs per row and the runtime's version are stored as reference.json beside`,
    `the version, whose manifest stays as it was. Adding the same reference again changes nothing; a different one is a`,
    `conflict (exit code 4) unless --replace. A row the model refuses fails with exit code 2 and stores nothing.`,
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %> iris@1 model/reference.csv',
    '<%= config.bin %> <%= command.id %> iris@prod rows.jsonl --replace --json',
  ]

  static args = {
    ref: Args.string({description: 'NAME@REF (REF: version, alias or latest).', required: true}),
    file: Args.string({description: 'Reference rows: JSON, JSON Lines or CSV.', required: true}),
  }

  static flags = {
    replace: Flags.boolean({summary: 'Replace a different reference set the version has.', default: false}),
    ...storeFlags,
  }

  async run(): Promise<ReferenceResult> {
    const ref = parseModelRef(this.args.ref)
    const store = await storeFor(this.project, this.flags)
    const result = await addReference(store, {ref, file: this.args.file, replace: this.flags.replace})
    const {reference} = result
    const outcome = result.unchanged ? 'unchanged' : result.replaced ? `replaced sha256:${result.replaced.slice(0, 12)}` : 'added'
    this.log(`${result.ref} reference ${outcome}: ${reference.rows} rows, ${reference.runtime}, sha256:${reference.sha256}`)
    return result
  }
}
