import {join} from 'node:path'

import {type DeployConfig, mergeDeployConfig, readValuesFile} from '../config/deploy.js'
import {type ProjectConfig, validateDeployValues} from '../config/load.js'
import {imageNames} from '../images/names.js'
import type {Delivery} from '../pod/contract.js'
import {readState} from '../state/project-state.js'
import type {ModelManifest} from '../store/manifest.js'
import type {StoreSettings} from '../store/open.js'
import {BUILT_IN_TEMPLATES, type KubernetesObject, type RenderedFile, renderManifests} from './render.js'
import {type ManifestValues, manifestValues} from './values.js'

export interface RenderRequest {
  project: ProjectConfig
  manifest: ModelManifest
  store: StoreSettings
  valuesFiles: string[]
  sets: string[]
  image: {repository?: string; tag?: string}
  /** How the pods get the model, decided once the deploy values are merged (default: the loader). */
  delivery?: (deploy: DeployConfig) => Promise<Delivery>
}

export interface RenderResult {
  files: RenderedFile[]
  objects: KubernetesObject[]
  values: ManifestValues
}

/**
 * The deploy values: mlops.yaml's deploy section, then each -f file, then each --set, validated.
 * Pure input checks: a release runs them before it asks a store or a cluster anything.
 */
export function deployValues(request: Pick<RenderRequest, 'project' | 'sets' | 'valuesFiles'>): DeployConfig {
  const files = request.valuesFiles.map(path => readValuesFile(path))
  const deploy = mergeDeployConfig(request.project.values.deploy, files, request.sets)
  validateDeployValues(
    deploy,
    request.valuesFiles.length > 0 || request.sets.length > 0
      ? 'deploy values (mlops.yaml, then -f files, then --set)'
      : (request.project.file ?? 'mlops.yaml'),
  )
  return deploy
}

/**
 * The exact objects deploy applies: values from mlops.yaml, -f files and
 * --set; the model pinned to a concrete version and sha256; images pinned by
 * digest when .mlops/state.json has one (from mlops image push).
 */
export async function renderProject(request: RenderRequest, deploy = deployValues(request)): Promise<RenderResult> {
  const names = await imageNames(request.project, request.image)
  const state = await readState(request.project.dir)
  const images = {
    loader: state.images?.loader?.ref === names.ref('loader') ? state.images.loader.pinned : names.ref('loader'),
    api: state.images?.api?.ref === names.ref('api') ? state.images.api.pinned : names.ref('api'),
  }
  const delivery = await request.delivery?.(deploy)
  const values = manifestValues({project: request.project, deploy, manifest: request.manifest, images, store: request.store, delivery})
  const rendered = renderManifests(values, [BUILT_IN_TEMPLATES, join(request.project.dir, 'manifests')])
  const autoscaled = values.deploy.autoscaling !== false
  const objects = rendered.flatMap(file => file.objects)
  // With an autoscaler the replica count is the autoscaler's: applying one would fight it.
  if (autoscaled) for (const object of objects) if (object.kind === 'Deployment') delete (object.spec as {replicas?: number}).replicas
  return {files: rendered, objects, values}
}
