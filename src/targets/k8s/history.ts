import type {V1Deployment, V1ReplicaSet} from '../../vendor/kubernetes.js'

import {NotFoundError, UsageError} from '../../errors.js'
import {ANNOTATION_PREFIX, annotatedModel} from '../../pod/contract.js'
import {FIELD_MANAGER, applyObjects} from './apply.js'
import type {KubeClients} from './client.js'
import {kubeError} from './errors.js'

export interface Revision {
  revision: number
  model: string | null
  version: string | null
  sha256: string | null
  images: string[]
  created: string | null
  replicas: number
  current: boolean
}

const REVISION = 'deployment.kubernetes.io/revision'

export async function readDeployment(clients: KubeClients, target: {name: string; namespace: string}): Promise<V1Deployment> {
  try {
    return await clients.apps.readNamespacedDeployment(target)
  } catch (error) {
    const mapped = kubeError(error, clients.server, `reading deployment ${target.namespace}/${target.name}`)
    if (mapped instanceof NotFoundError)
      throw new NotFoundError(`deployment ${target.namespace}/${target.name} does not exist`, {
        suggestion: 'deploy it first: mlops deploy (or pass --namespace / --context)',
      })
    throw mapped
  }
}

/**
 * The Deployment once its controller has seen its latest spec (status.observedGeneration), so that
 * its revision annotation is the applied template's; after a few seconds, as it is.
 */
export async function observedDeployment(
  clients: KubeClients,
  target: {name: string; namespace: string},
  waitMs = 10_000,
): Promise<V1Deployment> {
  const deadline = Date.now() + waitMs
  for (;;) {
    const live = await readDeployment(clients, target)
    if ((live.status?.observedGeneration ?? 0) >= (live.metadata?.generation ?? 0) || Date.now() >= deadline) return live
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

/** The Deployment's ReplicaSets, newest revision first: what rollback can go back to. */
export async function revisions(clients: KubeClients, deployment: V1Deployment): Promise<Array<Revision & {replicaSet: V1ReplicaSet}>> {
  const namespace = deployment.metadata!.namespace!
  const selector = Object.entries(deployment.spec?.selector?.matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',')
  const sets = (await clients.apps.listNamespacedReplicaSet({namespace, labelSelector: selector})).items.filter(rs =>
    rs.metadata?.ownerReferences?.some(o => o.uid === deployment.metadata?.uid),
  )
  const current = deployment.metadata?.annotations?.[REVISION]
  return sets
    .map(rs => {
      const annotations = rs.spec?.template?.metadata?.annotations ?? {}
      return {
        revision: Number(rs.metadata?.annotations?.[REVISION] ?? 0),
        ...(({name, version, sha256}) => ({model: name, version, sha256}))(annotatedModel(annotations)),
        images: [...(rs.spec?.template?.spec?.initContainers ?? []), ...(rs.spec?.template?.spec?.containers ?? [])].map(
          c => c.image ?? '',
        ),
        created: rs.metadata?.creationTimestamp ? new Date(rs.metadata.creationTimestamp).toISOString() : null,
        replicas: rs.status?.replicas ?? 0,
        current: rs.metadata?.annotations?.[REVISION] === current,
        replicaSet: rs,
      }
    })
    .sort((a, b) => b.revision - a.revision)
}

/**
 * Puts an earlier revision's pod template (and so its model) back, as
 * kubectl rollout undo does, through the same server-side apply as deploy:
 * the whole Deployment is applied, so no field mlops manages is dropped.
 * Without toRevision, the newest revision before the current one.
 */
export async function rollbackTo(
  clients: KubeClients,
  deployment: V1Deployment,
  toRevision?: number,
  options: {evenIfCurrent?: boolean} = {},
): Promise<Revision> {
  const history = await revisions(clients, deployment)
  const current = history.find(r => r.current)
  const target =
    toRevision === undefined
      ? history.find(r => !r.current && r.revision < (current?.revision ?? Number.POSITIVE_INFINITY))
      : history.find(r => r.revision === toRevision)
  if (!target) {
    throw new NotFoundError(
      toRevision === undefined
        ? `deployment ${deployment.metadata?.name} has no earlier revision to roll back to`
        : `deployment ${deployment.metadata?.name} has no revision ${toRevision}`,
      {
        suggestion: `revisions: ${history.map(r => r.revision).join(', ') || '(none)'}`,
      },
    )
  }

  // --atomic restores the revision that was live even while it is still the current one: the
  // Deployment's template has moved on, but the controller has not yet given it a revision.
  if (target.current && !options.evenIfCurrent) throw new UsageError(`revision ${target.revision} is the current one`)
  const template = structuredClone(target.replicaSet.spec!.template!)
  delete template.metadata?.labels?.['pod-template-hash']
  const modelAnnotations = Object.fromEntries(
    Object.entries(template.metadata?.annotations ?? {}).filter(([key]) => key.startsWith(ANNOTATION_PREFIX)),
  )
  const {spec} = deployment
  const object = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: deployment.metadata!.name!,
      namespace: deployment.metadata!.namespace!,
      labels: deployment.metadata?.labels,
      annotations: modelAnnotations,
    },
    spec: {
      ...(deployment.metadata?.managedFields?.some(
        f => f.manager === FIELD_MANAGER && JSON.stringify(f.fieldsV1 ?? {}).includes('"f:replicas"'),
      )
        ? {replicas: spec?.replicas}
        : {}),
      revisionHistoryLimit: spec?.revisionHistoryLimit,
      progressDeadlineSeconds: spec?.progressDeadlineSeconds,
      selector: spec?.selector,
      strategy: spec?.strategy,
      template,
    },
  }
  await applyObjects(clients, [object], {force: true})
  return target
}
