import {deploymentName} from '../../config/deploy.js'
import type {ProjectConfig} from '../../config/load.js'
import {type RenderResult, renderProject} from '../../manifests/service.js'
import type {ModelManifest} from '../../store/manifest.js'
import type {StoreOverrides} from '../../store/open.js'
import {resolveDeployModel} from '../deploy-model.js'

export interface ReleaseRequest {
  model?: string
  store: StoreOverrides
  values: string[]
  set: string[]
  namespace?: string
  image: {repository?: string; tag?: string}
}

/** The objects for one release on a cluster: the model ref resolved to a concrete version first, then rendered. */
export async function renderRelease(project: ProjectConfig, request: ReleaseRequest): Promise<RenderResult & {manifest: ModelManifest}> {
  const {settings, manifest} = await resolveDeployModel(project, request, {cluster: true})
  const sets = request.namespace ? [...request.set, `namespace=${request.namespace}`] : request.set
  const result = await renderProject({project, manifest, store: settings, valuesFiles: request.values, sets, image: request.image})
  return {...result, manifest}
}

/** The Deployment this project deploys, where --namespace (or deploy.namespace) says: the same rule as the manifests' values. */
export function deploymentOf(project: ProjectConfig, where: {namespace?: string}): {name: string; namespace: string} {
  const deploy = project.values.deploy ?? {}
  return deploymentName(project, where.namespace ? {...deploy, namespace: where.namespace} : deploy)
}
