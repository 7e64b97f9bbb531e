import type {V1Deployment} from '../../vendor/kubernetes.js'

export interface RolloutProgress {
  done: boolean
  message: string
}

/**
 * kubectl's rules for "rollout finished" (rollout_status.go): the controller
 * has observed this generation; no ProgressDeadlineExceeded; every replica
 * updated; no old replicas left; every updated replica available.
 */
export function rolloutStatus(deployment: V1Deployment): RolloutProgress & {failed?: string} {
  const generation = deployment.metadata?.generation ?? 0
  const status = deployment.status ?? {}
  if (generation > (status.observedGeneration ?? 0)) return {done: false, message: 'waiting for the deployment spec update to be observed'}
  const progressing = status.conditions?.find(c => c.type === 'Progressing')
  if (progressing?.reason === 'ProgressDeadlineExceeded')
    return {
      done: false,
      failed: `deployment ${deployment.metadata?.name} exceeded its progress deadline`,
      message: 'progress deadline exceeded',
    }
  const desired = deployment.spec?.replicas ?? 1
  const updated = status.updatedReplicas ?? 0
  const available = status.availableReplicas ?? 0
  if (updated < desired) return {done: false, message: `${updated} of ${desired} new replicas updated`}
  if ((status.replicas ?? 0) > updated)
    return {done: false, message: `${(status.replicas ?? 0) - updated} old replicas pending termination`}
  if (available < updated) return {done: false, message: `${available} of ${updated} updated replicas available`}
  return {done: true, message: `${available}/${desired} available`}
}
