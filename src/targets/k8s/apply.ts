import {PatchStrategy} from '../../vendor/kubernetes.js'

import type {KubernetesObject} from '../../manifests/render.js'
import {NotFoundError} from '../../errors.js'
import type {KubeClients} from './client.js'
import {kubeError} from './errors.js'

export const FIELD_MANAGER = 'mlops'

export interface AppliedObject {
  kind: string
  name: string
  namespace?: string
  /** created, configured (changed) or unchanged (the same object, its status aside). */
  result: 'configured' | 'created' | 'unchanged'
  resourceVersion?: string
}

/**
 * A JSON merge patch of the fields `patch` names (a `metadata.resourceVersion` in it is a
 * precondition: 409 when the object changed since). Unlike a PUT it never creates the object: 404
 * when it is gone. Errors are the client's, for the caller to word.
 */
export async function mergePatch<T extends KubernetesObject>(clients: KubeClients, patch: KubernetesObject): Promise<T> {
  return clients.objects.patch<T>(patch as T, undefined, undefined, FIELD_MANAGER, undefined, PatchStrategy.MergePatch)
}

/**
 * Server-side apply of every object with one field manager: namespaces
 * first, then the rest at once (they do not depend on each other; results
 * keep the objects' order). Safe to repeat: applying the same objects again
 * changes nothing on the server. A conflict with another manager is an error
 * unless forced; --dry-run=server sends everything through validation and
 * admission and persists nothing.
 */
export async function applyObjects(
  clients: KubeClients,
  objects: KubernetesObject[],
  options: {dryRun?: boolean; force?: boolean} = {},
): Promise<AppliedObject[]> {
  const namespaces = objects.filter(object => object.kind === 'Namespace')
  const applied: AppliedObject[] = []
  for (const object of namespaces) applied.push(await applyOne(clients, object, options, applied))
  const rest = objects.filter(object => object.kind !== 'Namespace')
  const results = await Promise.allSettled(rest.map(async object => applyOne(clients, object, options, applied)))
  // The first object's failure, in the objects' order, as a sequential apply would report it.
  const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected')
  if (failed) throw failed.reason
  applied.push(...results.map(result => (result as PromiseFulfilledResult<AppliedObject>).value))
  return applied
}

async function applyOne(
  clients: KubeClients,
  object: KubernetesObject,
  options: {dryRun?: boolean; force?: boolean},
  namespacesApplied: AppliedObject[],
): Promise<AppliedObject> {
  const what = `applying ${object.kind} ${object.metadata.namespace ? `${object.metadata.namespace}/` : ''}${object.metadata.name}`
  let before: unknown
  try {
    const current = await clients.objects.read({
      apiVersion: object.apiVersion,
      kind: object.kind,
      metadata: {name: object.metadata.name, namespace: object.metadata.namespace},
    })
    before = current
  } catch {
    before = undefined
  }

  try {
    const result = await clients.objects.patch(
      object,
      undefined,
      options.dryRun ? 'All' : undefined,
      FIELD_MANAGER,
      options.force ?? false,
      PatchStrategy.ServerSideApply,
    )
    return {
      kind: object.kind,
      name: object.metadata.name,
      namespace: object.metadata.namespace,
      resourceVersion: (result.metadata as {resourceVersion?: string} | undefined)?.resourceVersion,
      result: applyResult(before, result),
    }
  } catch (error) {
    const mapped = kubeError(error, clients.server, what)
    // A server dry run creates nothing, so objects in a namespace it would create cannot be checked.
    const namespace = object.metadata.namespace
    if (
      options.dryRun &&
      mapped instanceof NotFoundError &&
      namespace &&
      namespacesApplied.some(a => a.kind === 'Namespace' && a.name === namespace && a.result === 'created')
    ) {
      throw new NotFoundError(`${what}: namespace ${namespace} does not exist yet, and a server dry run creates nothing`, {
        suggestion: `check the other objects with --dry-run client, or create the namespace first (kubectl create namespace ${namespace})`,
      })
    }

    throw mapped
  }
}

/** What an apply did to an object: created (none before), configured, or unchanged (the same, status aside). */
export function applyResult(before: unknown, after: unknown): AppliedObject['result'] {
  if (before === undefined) return 'created'
  return desiredState(before) === desiredState(after) ? 'unchanged' : 'configured'
}

/**
 * An object as a deploy changes it: everything but its status and the server's bookkeeping.
 * A controller writing status between the read and the apply (the disruption controller counts
 * a PodDisruptionBudget's healthy pods as a rollout goes) bumps the resourceVersion; that alone
 * is no change this deploy made, so it is not reported as "configured".
 */
function desiredState(object: unknown): string {
  const {status: _status, metadata = {}, ...rest} = object as {status?: unknown; metadata?: Record<string, unknown>}
  const {resourceVersion: _rv, managedFields: _fields, generation: _generation, ...identity} = metadata
  return JSON.stringify(sortKeys({...rest, metadata: identity}))
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(item => sortKeys(item))
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(
    Object.entries(value)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([key, item]) => [key, sortKeys(item)]),
  )
}
