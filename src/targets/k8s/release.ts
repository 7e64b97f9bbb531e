import {deploymentName} from '../../config/deploy.js'
import {type ProjectConfig, deployValues} from '../../config/load.js'
import {releaseImages} from '../../images/release-images.js'
import {type RenderResult, renderProjectManifests} from '../../manifests/render.js'
import {manifestValues} from '../../manifests/values.js'
import type {PushedImage} from '../../state/project-state.js'
import type {ModelManifest} from '../../store/manifest.js'
import type {ModelStore} from '../../store/model-store.js'
import {resolveDeployModel} from '../deploy-model.js'
import type {DeployRequest} from '../target.js'
import type {KubeClients} from './client.js'
import {type DeliveryChoice, chooseDelivery} from './delivery.js'

/** What render and deploy --target k8s both take. */
export type ReleaseRequest = Pick<DeployRequest, 'delivery' | 'image' | 'model' | 'namespace' | 'set' | 'store' | 'values'>

export interface Release extends RenderResult {
  manifest: ModelManifest
  /** The store the version came from (deploy --canary reads its reference set). */
  store: ModelStore
  delivery: DeliveryChoice
  /** What mlops image push recorded of the API image, when that image is the one rendered. */
  pushedApi?: PushedImage
}

/**
 * The objects for one release on a cluster, top to bottom: the deploy values (a bad -f file or
 * --set is refused before any store or cluster is asked), the model ref resolved to a concrete
 * version, how the pods get it, the images, then the templates rendered with all of that.
 * Without clients (render, --dry-run client) delivery auto cannot ask the cluster and renders the loader.
 */
export async function renderRelease(project: ProjectConfig, request: ReleaseRequest, clients?: KubeClients): Promise<Release> {
  const sets = request.namespace ? [...request.set, `namespace=${request.namespace}`] : request.set
  const deploy = deployValues(project, {valuesFiles: request.values, sets})
  const {settings, store, manifest, reference} = await resolveDeployModel(project, request, {cluster: true})
  const requested = request.delivery ?? deploy.delivery ?? 'init-container'
  const delivery = await chooseDelivery({
    requested,
    manifest,
    publications: requested === 'init-container' ? [] : await store.publications(manifest.name, manifest.version),
    preferred: deploy.modelImage,
    clients,
    nodeSelector: deploy.nodeSelector,
  })
  const {pushedApi, ...images} = await releaseImages(project, request.image)
  const values = manifestValues({
    project,
    deploy,
    manifest,
    images,
    store: settings,
    delivery: delivery.delivery,
    reference: reference !== undefined,
  })
  return {...renderProjectManifests(values, project.dir), manifest, store, delivery, pushedApi}
}

/** The Deployment this project deploys, where --namespace (or deploy.namespace) says: the same rule as the manifests' values. */
export function deploymentOf(project: ProjectConfig, where: {namespace?: string}): {name: string; namespace: string} {
  const deploy = project.values.deploy ?? {}
  return deploymentName(project, where.namespace ? {...deploy, namespace: where.namespace} : deploy)
}
