// Generated from schemas/mlops.schema.json by scripts/config-types.js: edit the schema, then run it.

/**
 * Project configuration for the mlops CLI. Environment variables (MLOPS_*) override it, flags override both.
 */
export interface MlopsYaml {
  /**
   * Project name.
   */
  name?: string
  model?: {
    /**
     * Default model name for push.
     */
    name?: string
  }
  /**
   * Where models live: gs://BUCKET[/PREFIX], file:///abs/path or a folder relative to this file. Default: .mlops/store next to mlops.yaml.
   */
  store?:
    | string
    | {
        uri?: string
        /**
         * GCS API endpoint, for emulators such as fake-gcs-server (http://127.0.0.1:4443).
         */
        endpoint?: string
        /**
         * true: no credentials (public buckets, emulators). false: credentials even to a plain-http endpoint. Unset: credentials, except to a plain-http endpoint.
         */
        anonymous?: boolean
        /**
         * Google Cloud project id sent with requests.
         */
        project?: string
        /**
         * Seconds to keep retrying transient storage failures before giving up with exit code 7.
         */
        timeout?: number
      }
  /**
   * The loader and API images: <repository>/loader:<tag> and <repository>/api:<tag>.
   */
  image?: {
    /**
     * e.g. registry.example.com/team/iris
     */
    repository?: string
    /**
     * Default: the git short sha of the project, else the mlops version.
     */
    tag?: string
    /**
     * Base image for both (default node:20-slim): one image, or one per platform (an engine that keeps one platform per tag, as the classic image store does, needs a tag of its own for each).
     */
    base?:
      | string
      | {
          'linux/amd64'?: string
          'linux/arm64'?: string
        }
    /**
     * Platforms to build the images for (default: the Docker engine's). Two platforms make image push push an index (manifest list) that each node pulls its own entry from; set them to your cluster nodes' platforms.
     *
     * @minItems 1
     */
    platforms?: ['linux/amd64' | 'linux/arm64', ...('linux/amd64' | 'linux/arm64')[]]
  }
  /**
   * Kubernetes deployment settings (templates/manifests/). -f files and --set KEY=VALUE use the same keys.
   */
  deploy?: {
    name?: string
    namespace?: string
    replicas?: number
    port?: number
    /**
     * requests and limits of the API container, as Kubernetes quantities (cpu: 500m, memory: 1Gi).
     */
    resources?: {
      requests?: {
        cpu?: string | number
        memory?: string | number
        'ephemeral-storage'?: string | number
      }
      limits?: {
        cpu?: string | number
        memory?: string | number
        'ephemeral-storage'?: string | number
      }
    }
    autoscaling?:
      | false
      | {
          minReplicas?: number
          maxReplicas?: number
          targetCPUUtilization?: number
        }
    pdb?: {
      minAvailable?: number | string
    }
    gcs?: {
      secretName?: string
      serviceAccount?: string
      workloadIdentity?: string
    }
    /**
     * Where deploy, status, delete and predict act: local (a background mlops serve, the default), docker (loader and API containers) or k8s.
     */
    target?: 'local' | 'docker' | 'k8s'
    /**
     * Names of existing Secrets of type kubernetes.io/dockerconfigjson the node uses to pull the loader and API images (mlops image secret creates one from the credentials mlops image push uses).
     */
    imagePullSecrets?: string[]
    /**
     * Node labels the pods must match (spec.nodeSelector), e.g. {cloud.google.com/gke-nodepool: models}.
     */
    nodeSelector?: {
      [k: string]: string
    }
    /**
     * Taints the pods tolerate (spec.tolerations), as Kubernetes writes them.
     */
    tolerations?: {
      key?: string
      operator?: 'Exists' | 'Equal'
      value?: string
      effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute'
      tolerationSeconds?: number
    }[]
    /**
     * Seconds the Deployment may make no progress before Kubernetes reports ProgressDeadlineExceeded and deploy fails (default: 120 plus 1 s per 20 MiB of model).
     */
    progressDeadlineSeconds?: number
    /**
     * How pods get the model: init-container (the loader pulls it from the store into an emptyDir), image-volume (a Kubernetes image volume of the image mlops model publish made; the runtime pulls it once per node) or auto (image-volume where the cluster and the model allow, else init-container). Default: init-container.
     */
    delivery?: 'init-container' | 'image-volume' | 'auto'
    /**
     * image-volume: the published repository to use (REGISTRY/REPOSITORY) when a version was published to several (default: the most recent publication).
     */
    modelImage?: string
    /**
     * How a plain mlops deploy to the k8s target rolls out a new release: all-at-once (the default: every pod, as a Deployment's rolling update), canary (as deploy --canary, with deploy.canary) or shadow (as deploy --shadow). A first deploy, --dry-run, --diff and the local and docker targets deploy all at once; --all-at-once does for one deploy.
     */
    strategy?: 'all-at-once' | 'canary' | 'shadow'
    /**
     * deploy --canary and --shadow: the new version's pods beside the stable ones in steps (after a shadow phase, if asked), gated, then promoted.
     */
    canary?: {
      /**
       * Target share of pods at each step, percent, ascending (100, the promotion, is added). Default [10, 50].
       *
       * @minItems 1
       * @maxItems 10
       */
      steps?:
        | [number]
        | [number, number]
        | [number, number, number]
        | [number, number, number, number]
        | [number, number, number, number, number]
        | [number, number, number, number, number, number]
        | [number, number, number, number, number, number, number]
        | [number, number, number, number, number, number, number, number]
        | [number, number, number, number, number, number, number, number, number]
        | [number, number, number, number, number, number, number, number, number, number]
      /**
       * Seconds each step is watched before its gates are read (default 30).
       */
      intervalSeconds?: number
      /**
       * Least label agreement of the canary with the stable on the version's reference set (default 0.99).
       */
      minAgreement?: number
      /**
       * Largest canary error rate (5xx) above the stable's (default 0.01).
       */
      maxErrorRateIncrease?: number
      /**
       * Largest canary p99 over the stable's (default 3).
       */
      maxP99Ratio?: number
      /**
       * deploy --canary starts with a shadow phase: the candidate gets no user traffic, the stable mirrors a sample of requests to it for one interval, gated on agreement and errors (as --shadow).
       */
      shadow?: boolean
      /**
       * Share of the stable's prediction requests mirrored to the candidate in the shadow phase (default 0.1).
       */
      shadowSample?: number
    }
  }
}
