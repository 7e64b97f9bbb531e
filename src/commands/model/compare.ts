import {Args, Flags} from '@oclif/core'

import {fromEnvironment} from '../../cli/flag-rules.js'
import {contextFlag, namespaceFlagLong, targetFlag} from '../../cli/flags.js'
import {storeFlags, storeFor} from '../../cli/store-flags.js'
import {TargetCommand} from '../../cli/target-command.js'
import {DisagreementError, UsageError} from '../../errors.js'
import {type CompareResult, compareModels, failureMessage, formatComparison} from '../../predict/compare.js'
import {parseModelRef} from '../../store/names.js'

/** A decimal number within bounds: a threshold. */
const numberFlag = (min: number, max = Number.POSITIVE_INFINITY) =>
  Flags.custom<number>({
    async parse(input, _context, options) {
      const value = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(input.trim()) ? Number(input) : Number.NaN
      if (!(value >= min && value <= max))
        throw new UsageError(
          `--${options.name} ${input} is not a number ${max === Number.POSITIVE_INFINITY ? `of at least ${min}` : `from ${min} to ${max}`}`,
        )
      return value
    },
  })

export default class ModelCompare extends TargetCommand<typeof ModelCompare> {
  static summary = 'Run two versions on the same rows and compare their answers: label agreement, differences, the worst rows.'

  static description = [
    `The rows are A's reference set (mlops model reference add), or --reference FILE. Both versions are pulled (verified)`,
    `and run in-process with the installed onnxruntime. Without B, A is compared with a running server instead: --url, or`,
    `the deployment of --target (k8s through a port-forward), asked with the same requests as mlops predict. Reports the share`,
    `of rows with equal labels, the largest and mean absolute difference per output (a classifier's probability per class),`,
    `and the rows that differ most. Below --min-agreement or above --max-delta it exits 12 naming the rows.`,
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %> iris@1 iris@2',
    '<%= config.bin %> <%= command.id %> iris@prod iris@latest --reference model/reference.csv --min-agreement 0.99 --max-delta 0.05',
    '<%= config.bin %> <%= command.id %> iris@prod --url http://127.0.0.1:8000 --max-delta 0',
    '<%= config.bin %> <%= command.id %> iris@prod --target k8s --namespace iris --min-agreement 1 --json',
  ]

  static args = {
    a: Args.string({description: 'NAME@REF whose answers are the baseline (REF: version, alias or latest).', required: true}),
    b: Args.string({description: 'NAME@REF to compare with A (another model too); without it, the server of --url or --target.'}),
  }

  static flags = {
    reference: Flags.string({summary: "Rows (JSON, JSON Lines or CSV) instead of A's reference set."}),
    'min-agreement': numberFlag(0, 1)({summary: 'Exit 12 when the share of rows with equal labels is below this (0 to 1).'}),
    'max-delta': numberFlag(0)({summary: 'Exit 12 when an output of a row differs by more than this.'}),
    worst: Flags.integer({summary: 'Show this many of the rows that differ most.', default: 5, min: 0, max: 100}),
    url: Flags.string({summary: 'Compare A with the model server at this URL (instead of B).', env: 'MLOPS_PREDICT_URL'}),
    target: targetFlag,
    namespace: namespaceFlagLong,
    context: contextFlag,
    ...storeFlags,
  }

  async run(): Promise<CompareResult> {
    const {args, flags} = this
    const b = args.b === undefined ? undefined : parseModelRef(args.b)
    if (b) this.refuseServer()
    const store = await storeFor(this.project, flags)
    const result = await compareModels(
      store,
      {
        a: parseModelRef(args.a),
        b,
        reference: flags.reference,
        worst: flags.worst,
        thresholds: {minAgreement: flags['min-agreement'], maxDelta: flags['max-delta']},
      },
      () => this.serverEndpoint(1),
    )
    this.log(formatComparison(result))
    const failed = failureMessage(result)
    if (failed) throw new DisagreementError(failed)
    return result
  }

  /** B names the other side: a --url or --target given on the command line would name a second one. */
  private refuseServer(): void {
    const {flags} = this
    const given = (['url', 'target'] as const).filter(
      name => flags[name] !== undefined && !fromEnvironment(ModelCompare.flags[name], flags[name]),
    )
    if (given.length > 0)
      throw new UsageError(`B and --${given[0]} each name what A is compared with: pass one of them`, {
        suggestion: 'B for another version run here, --url or --target for a running server',
      })
    this.refuseForeign('B', [])
  }
}
