import {Flags} from '@oclif/core'

import type {ProjectConfig} from '../config/load.js'
import {UsageError} from '../errors.js'
import {type RenderResult, renderProject} from '../manifests/service.js'
import type {ModelManifest} from '../store/manifest.js'
import {LATEST, parseModelRef} from '../store/names.js'
import type {ModelStore} from '../store/model-store.js'
import {type StoreSettings, openStore, resolveStoreSettings} from '../store/open.js'
import {storeFlags, storeOverrides} from './store-flags.js'
import {imageNameFlags} from './image-flags.js'

/** What render and deploy both take: the model, values, image names and the store. */
export const renderFlags = {
  model: Flags.string({summary: 'NAME@REF to deploy (default: model.name in mlops.yaml, at latest).', env: 'MLOPS_MODEL'}),
  values: Flags.string({char: 'f', summary: 'Values file with deploy settings (repeatable; later wins).', multiple: true, default: []}),
  set: Flags.string({summary: 'KEY=VALUE deploy setting, e.g. replicas=3 (repeatable; wins over -f).', multiple: true, default: []}),
  namespace: Flags.string({char: 'n', summary: 'Namespace (default: deploy.namespace, else the project name).', env: 'MLOPS_NAMESPACE'}),
  ...imageNameFlags,
  ...storeFlags,
}

type RenderFlagValues = {model?: string; values: string[]; set: string[]; namespace?: string; tag?: string; repository?: string} & Parameters<typeof storeOverrides>[0]

/**
 * The model to deploy (--model, else model.name at latest) resolved to a
 * concrete version in the store. For a cluster the store must be gs://: pods
 * cannot read a folder on this machine.
 */
export async function resolveDeployModel(project: ProjectConfig, flags: Pick<RenderFlagValues, 'model'> & Parameters<typeof storeOverrides>[0], options: {cluster: boolean}): Promise<{settings: StoreSettings; store: ModelStore; manifest: ModelManifest}> {
  const refText = flags.model ?? project.values.model?.name
  if (!refText) throw new UsageError('no model to deploy: pass --model NAME@REF', {suggestion: 'or set model.name in mlops.yaml'})
  const settings = resolveStoreSettings(project, storeOverrides(flags), process.cwd())
  if (options.cluster && !settings.uri.startsWith('gs://')) {
    throw new UsageError(`pods cannot read the local store ${settings.uri}: Kubernetes deployments load models from a gs:// store`, {
      suggestion: 'set store: gs://BUCKET[/PREFIX] in mlops.yaml (or --store / MLOPS_STORE) and push the model there',
    })
  }

  const store = await openStore(settings)
  return {settings, store, manifest: await store.resolve(parseModelRef(refText, {defaultRef: LATEST}))}
}

/** Resolves the model ref to a concrete version first, then renders: a pod never decides which model it gets. */
export async function renderFromFlags(project: ProjectConfig, flags: RenderFlagValues): Promise<RenderResult & {manifest: ModelManifest}> {
  const {settings, manifest} = await resolveDeployModel(project, flags, {cluster: true})
  const sets = flags.namespace ? [...flags.set, `namespace=${flags.namespace}`] : flags.set
  const result = await renderProject({project, manifest, store: settings, valuesFiles: flags.values, sets, image: {repository: flags.repository, tag: flags.tag}})
  return {...result, manifest}
}

export type Target = 'docker' | 'k8s' | 'local'

export const targetFlag = Flags.string({summary: 'Where: local (a background mlops serve on this machine), docker (loader and API containers) or k8s (default: deploy.target, else local).', options: ['local', 'docker', 'k8s'], env: 'MLOPS_TARGET'})

/** The target from --target, deploy.target in mlops.yaml, else local (the zero-setup default). */
export function targetOf(project: ProjectConfig, flag: string | undefined): Target {
  return (flag ?? project.values.deploy?.target ?? 'local') as Target
}

/** Flags of the commands that act on a live deployment (status, rollback, delete). */
export const targetFlags = {
  namespace: Flags.string({char: 'n', summary: 'Namespace (default: deploy.namespace, else the project name).', env: 'MLOPS_NAMESPACE'}),
  context: Flags.string({summary: 'kubeconfig context (default: the current one).', env: 'MLOPS_KUBE_CONTEXT'}),
}

/** Whether a flag's value came from its environment variable (oclif's `env`) rather than the command line. */
export function fromEnvironment(definition: {env?: string} | undefined, value: unknown): boolean {
  return definition?.env !== undefined && value !== undefined && process.env[definition.env] === value
}

/**
 * Flags that only mean something for a cluster are refused on the other
 * targets rather than silently ignored; a value that came from the
 * environment (MLOPS_NAMESPACE exported for the cluster) is not an error.
 */
export function refuseClusterFlags(flags: Record<string, unknown>, definitions: Record<string, {env?: string}>, where: string, names: string[] = ['namespace', 'context']): void {
  const given = names.filter(name => {
    const value = flags[name]
    if (value === undefined || value === false || (Array.isArray(value) && value.length === 0)) return false
    return !fromEnvironment(definitions[name], value)
  })
  if (given.length > 0) {
    throw new UsageError(`${given.map(name => `--${name}`).join(', ')} ${given.length === 1 ? 'applies' : 'apply'} to --target k8s, not ${where}`, {suggestion: 'drop it, or pass --target k8s'})
  }
}

/** The Deployment this project deploys: the same name and namespace rules as the manifests' values. */
export function deploymentTarget(project: ProjectConfig, flags: {namespace?: string}): {name: string; namespace: string} {
  const name = project.values.deploy?.name ?? project.values.name ?? project.values.model?.name
  if (!name) throw new UsageError('no deployment name: set name (or deploy.name) in mlops.yaml', {suggestion: 'run the command in the project folder, or pass --config'})
  return {name, namespace: flags.namespace ?? project.values.deploy?.namespace ?? name}
}
