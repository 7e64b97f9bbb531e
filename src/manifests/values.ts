import {DEPLOY_DEFAULTS, type DeployConfig, deploymentName} from '../config/deploy.js'
import type {ProjectConfig} from '../config/load.js'
import {
  API_PORT_NAME,
  CONTAINERS,
  DELIVERY_ANNOTATIONS,
  type Delivery,
  type Env,
  GCS_KEY_DIR,
  HEALTH_PATH,
  READY_PATH,
  SHADOW_DIR,
  SHADOW_VOLUME,
  WORKDIR,
  apiEnv,
  loaderArgs,
  loaderEnv,
  modelAnnotations,
  shadowConfigMapName,
  workersForCpuLimit,
} from '../pod/contract.js'
import type {ModelManifest} from '../store/manifest.js'
import type {StoreSettings} from '../store/open.js'

export interface ValuesInput {
  project: ProjectConfig
  deploy: DeployConfig
  manifest: ModelManifest
  images: {loader: string; api: string}
  store: StoreSettings
  /** Default: the loader (init-container). */
  delivery?: Delivery
  /** The version has a reference set: the loader fetches it and serve checks its answers against it. */
  reference?: boolean
}

type Tolerations = NonNullable<DeployConfig['tolerations']>

/** Everything the templates in templates/manifests/ may refer to; a null leaves its key out of the rendered object. */
export interface ManifestValues {
  app: {name: string; namespace: string; labels: Record<string, string>; selector: Record<string, string>}
  model: {annotations: Record<string, string>}
  images: {loader: string; api: string}
  deploy: {
    replicas: number
    port: number
    resources: NonNullable<DeployConfig['resources']>
    autoscaling: false | {minReplicas: number; maxReplicas: number; targetCPUUtilization: number}
    pdb: {minAvailable: number | string}
    progressDeadlineSeconds: number
    startupFailureThreshold: number
    imagePullSecrets: Array<{name: string}> | null
    nodeSelector: Record<string, string> | null
    tolerations: Tolerations | null
  }
  loader: {
    args: string[]
    env: Env[]
    volumeMounts: Array<{name: string; mountPath: string; readOnly?: boolean}>
    resources: Record<string, Record<string, string>>
    /** The loader as the pod's initContainers; null with an image volume (nothing to download). */
    initContainers: Array<Record<string, unknown>> | null
  }
  /** The containers' hardened security context. */
  securityContext: Record<string, unknown>
  delivery: Delivery
  api: {env: Env[]}
  gcs: {serviceAccount: string | false; workloadIdentity: string; podServiceAccount: string; automountToken: boolean}
  volumes: Array<Record<string, unknown>>
  /** The pod contract's names and paths, so that templates (built-in or the project's) need not repeat them. */
  pod: {
    workdir: string
    readyPath: string
    healthPath: string
    containers: {loader: string; api: string}
    portName: string
    /** The shadow config's volume and where the API container mounts it. */
    shadow: {volume: string; dir: string}
  }
}

/** The values for one model version: the pod contract (src/pod/contract.ts) filled in for Kubernetes. */
export function manifestValues(input: ValuesInput): ManifestValues {
  const {deploy, manifest, images, store} = input
  const {name, namespace} = deploymentName(input.project, deploy, manifest.name)
  const selector = {'app.kubernetes.io/name': name}
  const labels = {
    ...selector,
    'app.kubernetes.io/component': 'model-server',
    'app.kubernetes.io/managed-by': 'mlops',
    'mlops.io/model': manifest.name,
  }
  const gcs = deploy.gcs ?? {}
  const port = deploy.port ?? DEPLOY_DEFAULTS.port
  const sizeMiB = manifest.size / (1024 * 1024)
  // A bigger model takes longer to download and load: give the rollout and the start-up probe time to match.
  const loadSeconds = Math.ceil(60 + sizeMiB / 20)
  const delivery = input.delivery ?? {kind: 'init-container'}
  const securityContext = {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: ['ALL']}}
  const loader = {
    args: loaderArgs(manifest, {reference: Boolean(input.reference)}),
    env: loaderEnv(store, {keyFile: Boolean(gcs.secretName)}),
    volumeMounts: [
      {name: 'workdir', mountPath: WORKDIR},
      ...(gcs.secretName ? [{name: 'gcs-key', mountPath: GCS_KEY_DIR, readOnly: true}] : []),
    ],
    resources: {requests: {cpu: '100m', memory: '128Mi'}, limits: {memory: '256Mi'}},
  }
  const imageVolume = delivery.kind === 'image-volume'
  // The loader fetches the reference set from the store; an image volume holds it when it was published with the version.
  const reference = imageVolume ? Boolean(delivery.reference) : Boolean(input.reference)
  return {
    app: {name, namespace, labels, selector},
    model: {
      annotations: {
        ...modelAnnotations(manifest, images),
        ...(imageVolume ? {[DELIVERY_ANNOTATIONS.delivery]: delivery.kind, [DELIVERY_ANNOTATIONS.image]: delivery.image} : {}),
      },
    },
    images,
    deploy: {
      replicas: deploy.replicas ?? DEPLOY_DEFAULTS.replicas,
      port,
      resources: deploy.resources ?? DEPLOY_DEFAULTS.resources,
      autoscaling: deploy.autoscaling === false ? false : {...DEPLOY_DEFAULTS.autoscaling, ...deploy.autoscaling},
      pdb: {...DEPLOY_DEFAULTS.pdb, ...deploy.pdb},
      progressDeadlineSeconds: deploy.progressDeadlineSeconds ?? 60 + loadSeconds,
      startupFailureThreshold: Math.ceil(loadSeconds / 2),
      imagePullSecrets: deploy.imagePullSecrets?.length ? deploy.imagePullSecrets.map(secret => ({name: secret})) : null,
      nodeSelector: deploy.nodeSelector && Object.keys(deploy.nodeSelector).length > 0 ? deploy.nodeSelector : null,
      tolerations: deploy.tolerations?.length ? deploy.tolerations : null,
    },
    loader: {
      ...loader,
      initContainers: imageVolume
        ? null
        : [
            {
              name: CONTAINERS.loader,
              image: images.loader,
              imagePullPolicy: 'IfNotPresent',
              args: loader.args,
              env: loader.env,
              volumeMounts: loader.volumeMounts,
              terminationMessagePolicy: 'FallbackToLogsOnError',
              resources: loader.resources,
              securityContext,
            },
          ],
    },
    securityContext,
    delivery,
    api: {
      env: apiEnv(manifest, port, {
        pinSha256: imageVolume,
        reference,
        workers: workersForCpuLimit((deploy.resources ?? DEPLOY_DEFAULTS.resources).limits?.cpu),
        shadowConfig: true,
      }),
    },
    gcs: {
      serviceAccount: gcs.serviceAccount ?? false,
      workloadIdentity: gcs.workloadIdentity ?? '',
      podServiceAccount: gcs.serviceAccount ?? 'default',
      automountToken: false,
    },
    volumes: [
      ...(imageVolume
        ? [{name: 'workdir', image: {reference: delivery.image, pullPolicy: 'IfNotPresent'}}]
        : [
            {name: 'workdir', emptyDir: {sizeLimit: `${Math.ceil((manifest.size * 1.5) / (1024 * 1024)) + 64}Mi`}},
            ...(gcs.secretName ? [{name: 'gcs-key', secret: {secretName: gcs.secretName}}] : []),
          ]),
      // deploy --shadow's switch: absent until then, so no pod waits for it.
      {name: SHADOW_VOLUME, configMap: {name: shadowConfigMapName(name), optional: true}},
    ],
    pod: {
      workdir: WORKDIR,
      readyPath: READY_PATH,
      healthPath: HEALTH_PATH,
      containers: {...CONTAINERS},
      portName: API_PORT_NAME,
      shadow: {volume: SHADOW_VOLUME, dir: SHADOW_DIR},
    },
  }
}
