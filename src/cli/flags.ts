/**
 * Flag definitions shared by several commands, and nothing else: what the
 * values mean is decided by the services they are handed to.
 */
import {Flags} from '@oclif/core'

import {DELIVERIES} from '../pod/contract.js'
import {TARGETS, TARGET_NAMES} from '../targets/target.js'
import {parseDuration} from '../util/duration.js'
import {imageNameFlags} from './image-flags.js'
import {storeFlags} from './store-flags.js'

const namespaceSummary = 'Namespace (default: deploy.namespace, else the project name).'

/** Kubernetes namespace; predict has no short form (-n is its --requests). */
export const namespaceFlag = Flags.string({char: 'n', summary: namespaceSummary, env: 'MLOPS_NAMESPACE'})
export const namespaceFlagLong = Flags.string({
  summary: 'Namespace with --target k8s (default: deploy.namespace, else the project name).',
  env: 'MLOPS_NAMESPACE',
})

export const contextFlag = Flags.string({summary: 'kubeconfig context (default: the current one).', env: 'MLOPS_KUBE_CONTEXT'})

export const targetFlag = Flags.string({
  summary: `Where: ${TARGET_NAMES.map(name => `${name} (${TARGETS[name].summary})`).join(', ')} (default: deploy.target, else local).`,
  options: TARGET_NAMES,
  env: 'MLOPS_TARGET',
})

/** A duration such as 90s, 5m or 1h30m (a bare number is seconds), parsed to milliseconds. */
export const durationFlag = Flags.custom<number>({
  parse: async (input, _context, options) => parseDuration(input, `--${options.name}`),
})

/** What a release takes besides the model (render, deploy, model warm): values, image names and the store. */
export const releaseFlags = {
  values: Flags.string({char: 'f', summary: 'Values file with deploy settings (repeatable; later wins).', multiple: true, default: []}),
  set: Flags.string({summary: 'KEY=VALUE deploy setting, e.g. replicas=3 (repeatable; wins over -f).', multiple: true, default: []}),
  namespace: namespaceFlag,
  delivery: Flags.option({
    summary:
      'How pods get the model: init-container (the loader), image-volume (the image mlops model publish made) or auto (default: deploy.delivery, else init-container).',
    options: DELIVERIES,
  })(),
  ...imageNameFlags,
  ...storeFlags,
}

/** What render and deploy both take: the model, and the release's flags. */
export const renderFlags = {
  model: Flags.string({summary: 'NAME@REF to deploy (default: model.name in mlops.yaml, at latest).', env: 'MLOPS_MODEL'}),
  ...releaseFlags,
}

/** Where a deployment is on a cluster (status, rollback, delete, image secret). */
export const clusterFlags = {
  namespace: namespaceFlag,
  context: contextFlag,
}
