import {Flags} from '@oclif/core'

import {contextFlag, namespaceFlagLong, targetFlag} from '../cli/flags.js'
import {TargetCommand} from '../cli/target-command.js'
import {ExitCode} from '../errors.js'
import {type PredictOptions, type PredictResult, predict} from '../predict/predict.js'

export default class Predict extends TargetCommand<typeof Predict> {
  static summary = 'Send test requests to a model server and show the answer, with latency figures under load.'

  static description = [
    `Rows come from --data (JSON), --file (JSON: {"data": [...]} or a list of rows; or CSV, one row per line, a header line skipped) or stdin.`,
    `With -n, sends N requests with --concurrency in flight and reports requests/s and p50/p95/p99 latency.`,
    `--expect makes it exit 11 when the prediction differs (for CI smoke tests).`,
  ].join(' ')

  static examples = [
    "<%= config.bin %> <%= command.id %> --url http://127.0.0.1:8000 --data '[[6.3, 3.3, 6.0, 2.5]]'",
    '<%= config.bin %> <%= command.id %> --url http://127.0.0.1:8000 --file rows.csv --endpoint /predict',
    "<%= config.bin %> <%= command.id %> --target k8s --namespace iris --data '[[6.3, 3.3, 6.0, 2.5]]' -n 500 -c 16",
    "<%= config.bin %> <%= command.id %> --url http://127.0.0.1:8000 --data '[6.3, 3.3, 6.0, 2.5]' -n 2000 --concurrency 32 --expect virginica",
    'echo \'{"data": [[5.1, 3.5, 1.4, 0.2]]}\' | <%= config.bin %> <%= command.id %> --url http://127.0.0.1:8000 --protocol v2 --model-name iris',
  ]

  static flags = {
    url: Flags.string({summary: 'Base URL of the model server.', env: 'MLOPS_PREDICT_URL'}),
    // Where mlops deploy started the server; k8s goes through a port-forward to a ready pod.
    target: targetFlag,
    // -n is --requests here, so --namespace has no short form.
    namespace: namespaceFlagLong,
    context: contextFlag,
    data: Flags.string({summary: 'Rows as JSON.', exclusive: ['file']}),
    file: Flags.string({summary: 'Rows from a JSON or CSV file.', exclusive: ['data']}),
    endpoint: Flags.string({
      summary: 'Path for the original protocol.',
      default: '/predict/label',
      options: ['/predict', '/predict/label'],
    }),
    protocol: Flags.string({
      summary: 'original (the model-load API) or v2 (Open Inference Protocol).',
      default: 'original',
      options: ['original', 'v2'],
    }),
    'model-name': Flags.string({summary: 'Model name for --protocol v2 (default: model.name in mlops.yaml).'}),
    requests: Flags.integer({char: 'n', summary: 'Send this many requests and report latency figures.', default: 1, min: 1}),
    concurrency: Flags.integer({char: 'c', summary: 'Requests in flight at once (with -n).', default: 1, min: 1}),
    expect: Flags.string({summary: 'Exit 11 unless the prediction equals this (a label, a number, or JSON).'}),
  }

  async run(): Promise<PredictResult> {
    const {flags} = this
    const {result, interrupted} = await predict(
      {
        rows: {data: flags.data, file: flags.file, stdin: process.stdin},
        endpoint: flags.endpoint,
        protocol: flags.protocol as PredictOptions['protocol'],
        // mlops.yaml is read only when the name is needed and not given.
        model: flags.protocol === 'v2' ? (flags['model-name'] ?? this.project.values.model?.name) : undefined,
        requests: flags.requests,
        concurrency: flags.concurrency,
        expect: flags.expect,
      },
      connections => this.serverEndpoint(connections),
      this.io(),
    )
    // The shell's convention for a run stopped by Ctrl-C (128 + SIGINT).
    if (interrupted) process.exitCode = ExitCode.INTERRUPTED
    return result
  }
}
