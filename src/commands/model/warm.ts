import {Args} from '@oclif/core'

import {clusterFlags, durationFlag, releaseFlags} from '../../cli/flags.js'
import {storeOverrides} from '../../cli/store-flags.js'
import {TargetCommand} from '../../cli/target-command.js'
import {type WarmResult, describeWarm, warmRelease} from '../../targets/k8s/warm.js'

export default class ModelWarm extends TargetCommand<typeof ModelWarm> {
  static summary = 'Pull a model version and its images on every node its pods may go to, before a deploy (Kubernetes).'

  static description = [
    `Runs a short-lived DaemonSet, NAME-warm in the deployment's namespace, on every node that matches deploy.nodeSelector`,
    `and deploy.tolerations, with deploy.imagePullSecrets: its pods mount the model image (image-volume delivery) in the API`,
    `image and idle, so each node pulls both; once every pod is ready it is removed (on failure and Ctrl-C too).`,
    `With the loader (init-container delivery) only the loader and API images are pulled: each pod still downloads the model.`,
    `A node that cannot pull exits 9 naming it; no matching node exits 3. A warm DaemonSet left by a killed run is replaced`,
    `by the next warm and removed by the next deploy. mlops deploy --prewarm does the same before its rollout.`,
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %> iris@prod',
    '<%= config.bin %> <%= command.id %> iris@4 --delivery image-volume --timeout 10m --context gke_prod --json',
  ]

  static args = {
    ref: Args.string({description: 'NAME@REF (REF: version, alias or latest).', required: true}),
  }

  static flags = {
    ...releaseFlags,
    context: clusterFlags.context,
    timeout: durationFlag({
      summary: "How long to wait for every node, e.g. 90s, 5m (default: the Deployment's progress deadline plus a minute).",
    }),
  }

  async run(): Promise<WarmResult> {
    const {flags} = this
    const result = await warmRelease(
      this.project,
      {
        model: this.args.ref,
        store: storeOverrides(flags),
        image: {repository: flags.repository, tag: flags.tag},
        values: flags.values,
        set: flags.set,
        namespace: flags.namespace,
        delivery: flags.delivery,
        context: flags.context,
        timeoutMs: flags.timeout,
      },
      this.io(),
    )
    this.log(`warmed ${describeWarm(result)}`)
    return result
  }
}
