import {parse as parseYaml} from 'yaml'

import type {ProjectConfig} from '../config/load.js'
import {UsageError} from '../errors.js'
import type {ModelManifest} from '../store/manifest.js'
import {DEFAULT_STORE_TIMEOUT_SECONDS, type StoreSettings} from '../store/open.js'

/** The deploy section of mlops.yaml (and of -f values files, and of --set paths). */
export interface DeployConfig {
  target?: 'docker' | 'k8s' | 'local'
  name?: string
  namespace?: string
  replicas?: number
  port?: number
  resources?: Record<string, Record<string, string>>
  autoscaling?: false | {minReplicas?: number; maxReplicas?: number; targetCPUUtilization?: number}
  pdb?: {minAvailable?: number | string}
  gcs?: {secretName?: string; serviceAccount?: string; workloadIdentity?: string}
  imagePullSecrets?: string[]
  progressDeadlineSeconds?: number
  nodeSelector?: Record<string, string>
  tolerations?: Array<{key?: string; operator?: 'Equal' | 'Exists'; value?: string; effect?: 'NoExecute' | 'NoSchedule' | 'PreferNoSchedule'; tolerationSeconds?: number}>
}

const DEFAULTS = {
  replicas: 2,
  port: 8000,
  resources: {requests: {cpu: '100m', memory: '256Mi'}, limits: {cpu: '1', memory: '512Mi'}},
  autoscaling: {minReplicas: 2, maxReplicas: 10, targetCPUUtilization: 70},
  pdb: {minAvailable: 1},
}

/** Later wins: mlops.yaml's deploy section, then each -f file, then each --set KEY=VALUE (YAML scalars). */
export function mergeDeployConfig(base: DeployConfig | undefined, files: DeployConfig[], sets: string[]): DeployConfig {
  let config = structuredClone(base ?? {}) as Record<string, unknown>
  for (const file of files) config = deepMerge(config, file as Record<string, unknown>)
  for (const assignment of sets) {
    const eq = assignment.indexOf('=')
    if (eq <= 0) throw new UsageError(`invalid --set "${assignment}": use KEY=VALUE, e.g. --set replicas=3`)
    const path = assignment.slice(0, eq).replace(/^deploy\./, '').split('.')
    let target = config
    for (const key of path.slice(0, -1)) {
      if (typeof target[key] !== 'object' || target[key] === null) target[key] = {}
      target = target[key] as Record<string, unknown>
    }

    target[path.at(-1)!] = parseYaml(assignment.slice(eq + 1) || '""')
  }

  return config as DeployConfig
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = {...a}
  for (const [key, value] of Object.entries(b ?? {})) {
    out[key] = value && typeof value === 'object' && !Array.isArray(value) && typeof out[key] === 'object' && out[key] !== null
      ? deepMerge(out[key] as Record<string, unknown>, value as Record<string, unknown>)
      : value
  }

  return out
}

export interface ValuesInput {
  project: ProjectConfig
  deploy: DeployConfig
  manifest: ModelManifest
  images: {loader: string; api: string}
  store: StoreSettings
}

/** Everything the templates in templates/manifests/ may refer to. */
export function manifestValues(input: ValuesInput): Record<string, unknown> {
  const {deploy, manifest, images, store} = input
  const name = deploy.name ?? input.project.values.name ?? manifest.name
  const namespace = deploy.namespace ?? name
  const selector = {'app.kubernetes.io/name': name}
  const labels = {...selector, 'app.kubernetes.io/component': 'model-server', 'app.kubernetes.io/managed-by': 'mlops', 'mlops.io/model': manifest.name}
  const ref = `${manifest.name}@${manifest.version}`
  const gcs = deploy.gcs ?? {}
  const sizeMiB = manifest.size / (1024 * 1024)
  // A bigger model takes longer to download and load: give the rollout and the start-up probe time to match.
  const loadSeconds = Math.ceil(60 + sizeMiB / 20)
  const loaderEnv: Array<Record<string, unknown>> = [
    {name: 'MLOPS_STORE', value: store.uri},
    {name: 'MLOPS_LOG_FORMAT', value: 'json'},
    ...(store.endpoint ? [{name: 'MLOPS_GCS_ENDPOINT', value: store.endpoint}] : []),
    ...(store.anonymous ? [{name: 'MLOPS_GCS_ANONYMOUS', value: 'true'}] : []),
    ...(store.project ? [{name: 'MLOPS_GCS_PROJECT', value: store.project}] : []),
    ...(store.timeoutSeconds === DEFAULT_STORE_TIMEOUT_SECONDS ? [] : [{name: 'MLOPS_STORE_TIMEOUT', value: String(store.timeoutSeconds)}]),
    ...(gcs.secretName ? [{name: 'GOOGLE_APPLICATION_CREDENTIALS', value: '/var/secrets/google/key.json'}] : []),
  ]
  return {
    app: {name, namespace, labels, selector},
    model: {
      annotations: {
        'mlops.io/model': manifest.name,
        'mlops.io/model-version': manifest.version,
        'mlops.io/model-sha256': manifest.sha256,
        'mlops.io/model-size': String(manifest.size),
        'mlops.io/loader-image': images.loader,
        'mlops.io/api-image': images.api,
      },
    },
    images,
    deploy: {
      replicas: deploy.replicas ?? DEFAULTS.replicas,
      port: deploy.port ?? DEFAULTS.port,
      resources: deploy.resources ?? DEFAULTS.resources,
      autoscaling: deploy.autoscaling === false ? false : {...DEFAULTS.autoscaling, ...deploy.autoscaling},
      pdb: {...DEFAULTS.pdb, ...deploy.pdb},
      progressDeadlineSeconds: deploy.progressDeadlineSeconds ?? 60 + loadSeconds,
      startupFailureThreshold: Math.ceil(loadSeconds / 2),
      // null leaves the field out of the rendered object (see renderManifests).
      imagePullSecrets: deploy.imagePullSecrets?.length ? deploy.imagePullSecrets.map(secret => ({name: secret})) : null,
      nodeSelector: deploy.nodeSelector && Object.keys(deploy.nodeSelector).length > 0 ? deploy.nodeSelector : null,
      tolerations: deploy.tolerations?.length ? deploy.tolerations : null,
    },
    loader: {
      args: [ref, '--to', '/workdir/model.onnx', ...(manifest.labels ? ['--labels-to', '/workdir/labels.json'] : [])],
      env: loaderEnv,
      volumeMounts: [{name: 'workdir', mountPath: '/workdir'}, ...(gcs.secretName ? [{name: 'gcs-key', mountPath: '/var/secrets/google', readOnly: true}] : [])],
      resources: {requests: {cpu: '100m', memory: '128Mi'}, limits: {memory: '256Mi'}},
    },
    api: {
      env: [
        {name: 'MODEL_FILEPATH', value: '/workdir/model.onnx'},
        ...(manifest.labels ? [{name: 'LABEL_FILEPATH', value: '/workdir/labels.json'}] : []),
        {name: 'MODEL_NAME', value: manifest.name},
        {name: 'MODEL_VERSION', value: manifest.version},
        {name: 'PORT', value: String(deploy.port ?? DEFAULTS.port)},
      ],
    },
    gcs: {
      serviceAccount: gcs.serviceAccount ?? false,
      workloadIdentity: gcs.workloadIdentity ?? '',
      podServiceAccount: gcs.serviceAccount ?? 'default',
      automountToken: false,
    },
    volumes: [
      {name: 'workdir', emptyDir: {sizeLimit: `${Math.ceil((manifest.size * 1.5) / (1024 * 1024)) + 64}Mi`}},
      ...(gcs.secretName ? [{name: 'gcs-key', secret: {secretName: gcs.secretName}}] : []),
    ],
  }
}
