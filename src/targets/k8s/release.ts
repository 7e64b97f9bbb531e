import {deploymentName} from '../../config/deploy.js'
import type {ProjectConfig} from '../../config/load.js'
import {type RenderResult, deployValues, renderProject} from '../../manifests/service.js'
import type {ModelManifest} from '../../store/manifest.js'
import type {StoreOverrides} from '../../store/open.js'
import {resolveDeployModel} from '../deploy-model.js'
import type {KubeClients} from './client.js'
import {type DeliveryChoice, type DeliveryRequest, chooseDelivery} from './delivery.js'

export interface ReleaseRequest {
  model?: string
  store: StoreOverrides
  values: string[]
  set: string[]
  namespace?: string
  image: {repository?: string; tag?: string}
  /** --delivery; else deploy.delivery; else init-container. */
  delivery?: DeliveryRequest
}

/** The objects for one release on a cluster: the model ref resolved to a concrete version first, then rendered. */
export async function renderRelease(
  project: ProjectConfig,
  request: ReleaseRequest,
  clients?: KubeClients,
): Promise<RenderResult & {manifest: ModelManifest; delivery: DeliveryChoice}> {
  const sets = request.namespace ? [...request.set, `namespace=${request.namespace}`] : request.set
  // The values first: a bad -f file or --set is refused before any store or cluster is asked.
  const deploy = deployValues({project, valuesFiles: request.values, sets})
  const {settings, store, manifest} = await resolveDeployModel(project, request, {cluster: true})
  let choice: DeliveryChoice | undefined
  const result = await renderProject(
    {
      project,
      manifest,
      store: settings,
      valuesFiles: request.values,
      sets,
      image: request.image,
      async delivery(deploy) {
        const requested = request.delivery ?? deploy.delivery ?? 'init-container'
        const publications = requested === 'init-container' ? [] : await store.publications(manifest.name, manifest.version)
        choice = await chooseDelivery({
          requested,
          manifest,
          publications,
          preferred: deploy.modelImage,
          clients,
          nodeSelector: deploy.nodeSelector,
        })
        return choice.delivery
      },
    },
    deploy,
  )
  return {...result, manifest, delivery: choice!}
}

/** The Deployment this project deploys, where --namespace (or deploy.namespace) says: the same rule as the manifests' values. */
export function deploymentOf(project: ProjectConfig, where: {namespace?: string}): {name: string; namespace: string} {
  const deploy = project.values.deploy ?? {}
  return deploymentName(project, where.namespace ? {...deploy, namespace: where.namespace} : deploy)
}
