import {Flags} from '@oclif/core'

import {clusterFlags, durationFlag, renderFlags, targetFlag} from '../cli/flags.js'
import {storeOverrides} from '../cli/store-flags.js'
import {TargetCommand} from '../cli/target-command.js'
import {deploySummary, writeStepSummary} from '../cli/ci.js'
import {deployValues} from '../config/load.js'
import {errorMessage} from '../errors.js'
import {deployPlan} from '../targets/canary-plan.js'
import type {DeployResult} from '../targets/target.js'

export default class Deploy extends TargetCommand<typeof Deploy> {
  static summary = 'Deploy a model version (local, docker or Kubernetes target) and wait until it serves.'

  static description = [
    `--target local (the default) pulls the model as the loader would and starts mlops serve in the background;`,
    `--target docker runs the loader container into a volume, then the API container; both wait for /ready.`,
    `--target k8s: resolves the model ref to a concrete version and sha256, renders the manifests (see mlops render), refuses`,
    `an incompatible model before touching the cluster (exit 8), applies every object with server-side apply (field manager`,
    `"mlops"; a conflict with another manager exits 4 unless --force-conflicts), then waits for the rollout with kubectl's`,
    `rules and, when it cannot finish, exits 9 with a diagnosis from the pods (the loader's termination summary, image pull`,
    `errors, crash loops, scheduling).`,
    `Re-running the same deploy changes nothing. The default --timeout grows with the model size.`,
    `--prewarm first pulls the images on every node the pods may go to (see mlops model warm); --timeout applies to each step.`,
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %> --model iris@prod',
    '<%= config.bin %> <%= command.id %> --model iris@prod --delivery image-volume --prewarm',
    '<%= config.bin %> <%= command.id %> --model iris@4 --set replicas=3 --timeout 10m --context gke_prod',
    '<%= config.bin %> <%= command.id %> --dry-run server --set resources.limits.cpu=2',
  ]

  static flags = {
    ...renderFlags,
    target: targetFlag,
    port: Flags.integer({
      summary: 'local target: port for mlops serve on 127.0.0.1 (default: a free one).',
      default: 0,
      min: 0,
      max: 65_535,
    }),
    context: clusterFlags.context,
    'dry-run': Flags.string({
      summary: 'client: print what would be applied; server: let the API server validate and admit everything, persist nothing.',
      options: ['client', 'server'],
    }),
    timeout: durationFlag({
      summary: "How long to wait for the rollout, e.g. 90s, 5m (default: the Deployment's progress deadline plus a minute).",
    }),
    'force-conflicts': Flags.boolean({summary: 'Take over fields owned by another field manager.', default: false}),
    atomic: Flags.boolean({
      summary: 'When the rollout fails, roll back to the revision that was live before (still exit 9).',
      default: false,
    }),
    diff: Flags.boolean({
      summary: 'Print what would change against the live objects (a server-side dry run) and apply nothing.',
      default: false,
    }),
    prewarm: Flags.boolean({
      summary: 'Before the rollout, pull the images on every node the pods may go to (as mlops model warm does).',
      default: false,
      exclusive: ['dry-run', 'diff'],
    }),
    canary: Flags.boolean({
      summary:
        "Roll out in steps: the new version's pods beside the stable ones (a second Deployment behind the same Service), " +
        'gates read between steps, then promoted (default steps 10,50; deploy.canary in mlops.yaml; deploy.strategy: canary makes it the default).',
      default: false,
      exclusive: ['dry-run', 'diff'],
    }),
    steps: Flags.string({
      summary: 'Canary steps: target share of pods in percent, e.g. 10,50 (100, the promotion, is added). Implies --canary.',
    }),
    shadow: Flags.boolean({
      summary:
        'First a shadow phase: the new version gets no user traffic; the stable mirrors a sample of requests to it for one interval, ' +
        'gated on agreement and errors; then the canary steps (with --canary) or the promotion.',
      default: false,
      exclusive: ['dry-run', 'diff'],
    }),
    pause: Flags.boolean({
      summary:
        'Canary: stop after each step that passed, the canary left serving its share; mlops promote goes on, mlops abort removes it.',
      default: false,
    }),
    'all-at-once': Flags.boolean({
      summary: 'Roll out every pod at once (a Deployment rolling update), whatever deploy.strategy in mlops.yaml says.',
      default: false,
      exclusive: ['canary', 'steps', 'shadow', 'shadow-sample', 'pause'],
    }),
    'shadow-sample': Flags.string({summary: "Shadow: share of the stable's prediction requests mirrored (default 0.1). Implies --shadow."}),
    interval: durationFlag({summary: 'How long each canary step is watched before its gates are read (default 30s).'}),
    'min-agreement': Flags.string({
      summary: "Canary gate: least label agreement with the stable's answers on the version's reference set (default 0.99).",
    }),
    'max-error-rate-increase': Flags.string({summary: "Canary gate: largest error rate (5xx) above the stable's (default 0.01)."}),
    'max-p99-ratio': Flags.string({summary: "Canary gate: largest p99 over the stable's (default 3)."}),
  }

  async run(): Promise<DeployResult> {
    const {flags} = this
    const {target, name} = await this.target()
    const deployed = target.deploy({
      model: flags.model,
      store: storeOverrides(flags),
      image: {repository: flags.repository, tag: flags.tag},
      timeoutMs: flags.timeout,
      port: flags.port,
      values: flags.values,
      set: flags.set,
      namespace: flags.namespace,
      context: flags.context,
      delivery: flags.delivery,
      dryRun: flags['dry-run'] as 'client' | 'server' | undefined,
      diff: flags.diff,
      prewarm: flags.prewarm,
      // deploy.strategy and deploy.canary as the release's values have them: a -f file per environment may choose.
      canary: deployPlan(
        name === 'k8s' ? deployValues(this.project, {valuesFiles: flags.values, sets: flags.set}) : this.project.values.deploy,
        flags,
        {
          target: name,
          preview: flags['dry-run'] !== undefined || flags.diff,
        },
      ),
      atomic: flags.atomic,
      forceConflicts: flags['force-conflicts'],
    })
    // Under GitHub Actions, the run's page shows what was deployed, or why not.
    return deployed.then(
      outcome => {
        writeStepSummary(deploySummary(name, outcome))
        return outcome
      },
      (error: unknown) => {
        writeStepSummary({command: 'mlops deploy', ok: false, target: name, model: flags.model, outcome: `failed: ${errorMessage(error)}`})
        throw error
      },
    )
  }
}
