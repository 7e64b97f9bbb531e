import {createTwoFilesPatch} from 'diff'
import {stringify} from 'yaml'

import type {KubernetesObject} from '../../manifests/render.js'
import {FIELD_MANAGER} from './apply.js'
import type {KubeClients} from './client.js'
import {kubeError} from './errors.js'

/** Fields the server owns or changes on every write: noise in a diff. */
function comparable(object: Record<string, unknown> | undefined): string {
  if (!object) return ''
  const copy = structuredClone(object) as {metadata?: Record<string, unknown>; status?: unknown}
  for (const key of ['managedFields', 'resourceVersion', 'generation', 'creationTimestamp', 'uid']) delete copy.metadata?.[key]
  delete copy.status
  return stringify(copy, {aliasDuplicateObjects: false, sortMapEntries: true})
}

/**
 * What deploy would change, object by object: the live object against the
 * result of a server-side dry-run apply of the rendered one (so defaults and
 * other managers' fields are accounted for, as kubectl diff does).
 */
export async function diffObjects(clients: KubeClients, objects: KubernetesObject[], options: {force?: boolean} = {}): Promise<string> {
  const patches: string[] = []
  for (const object of objects) {
    const header = {
      apiVersion: object.apiVersion,
      kind: object.kind,
      metadata: {name: object.metadata.name, namespace: object.metadata.namespace},
    }
    const live = (await clients.objects.read(header).catch(() => undefined)) as Record<string, unknown> | undefined
    let merged: Record<string, unknown>
    try {
      merged = await clients.objects.patch(object, undefined, 'All', FIELD_MANAGER, options.force ?? false, 'application/apply-patch+yaml')
    } catch (error) {
      // A namespace that does not exist yet makes its objects' dry run fail: show them as new.
      if ((error as {code?: number}).code === 404 && !live) merged = object
      else throw kubeError(error, clients.server, `diffing ${object.kind} ${object.metadata.name}`)
    }

    const name = `${object.kind.toLowerCase()}/${object.metadata.namespace ? `${object.metadata.namespace}/` : ''}${object.metadata.name}`
    const before = comparable(live)
    const after = comparable(merged)
    if (before !== after)
      patches.push(createTwoFilesPatch(`live/${name}`, `deploy/${name}`, before, after, undefined, undefined, {context: 3}))
  }

  return patches.join('')
}
