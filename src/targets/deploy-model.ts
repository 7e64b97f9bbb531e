import type {ProjectConfig} from '../config/load.js'
import {UsageError} from '../errors.js'
import type {ModelManifest} from '../store/manifest.js'
import type {ModelStore} from '../store/model-store.js'
import {type ReferenceSummary, summarizeReference} from '../store/references.js'
import {LATEST, parseModelRef} from '../store/names.js'
import {type StoreOverrides, type StoreSettings, openStore, resolveStoreSettings, storeLocation} from '../store/open.js'

/**
 * The model to deploy (--model, else model.name at latest) resolved to a
 * concrete version in the store: a target never decides which model it gets.
 * Its reference set, when it has one, is read and verified too.
 * For a cluster the store must be gs://: pods cannot read a folder on this machine.
 */
export async function resolveDeployModel(
  project: ProjectConfig,
  request: {model?: string; store: StoreOverrides},
  options: {cluster: boolean},
): Promise<{settings: StoreSettings; store: ModelStore; manifest: ModelManifest; reference?: ReferenceSummary}> {
  const refText = request.model ?? project.values.model?.name
  if (!refText) throw new UsageError('no model to deploy: pass --model NAME@REF', {suggestion: 'or set model.name in mlops.yaml'})
  const settings = resolveStoreSettings(project, request.store, process.cwd())
  if (options.cluster && storeLocation(settings).kind !== 'gcs') {
    throw new UsageError(`pods cannot read the local store ${settings.uri}: Kubernetes deployments load models from a gs:// store`, {
      suggestion: 'set store: gs://BUCKET[/PREFIX] in mlops.yaml (or --store / MLOPS_STORE) and push the model there',
    })
  }

  const store = await openStore(settings)
  const manifest = await store.resolve(parseModelRef(refText, {defaultRef: LATEST}))
  // Read and verified now: a corrupt reference set fails the deploy before anything changes.
  const reference = await store.reference(manifest)
  return {settings, store, manifest, ...(reference ? {reference: summarizeReference(reference)} : {})}
}
