import {expect} from 'chai'

import {UsageError} from '../../src/errors.js'
import {type DeployConfig, mergeDeployConfig} from '../../src/config/deploy.js'
import {manifestValues} from '../../src/manifests/values.js'
import type {ModelManifest} from '../../src/store/manifest.js'
import type {StoreSettings} from '../../src/store/open.js'

describe('mergeDeployConfig: mlops.yaml < -f files < --set', () => {
  it('no base, no files, no --set: an empty config', () => {
    expect(mergeDeployConfig(undefined, [], [])).to.deep.equal({})
  })

  it('a -f file overrides mlops.yaml key by key, deeply; keys it does not name stay', () => {
    const base: DeployConfig = {
      replicas: 2,
      namespace: 'ml',
      resources: {requests: {cpu: '100m', memory: '256Mi'}, limits: {memory: '512Mi'}},
    }
    const file: DeployConfig = {replicas: 4, resources: {requests: {cpu: '1'}}}
    expect(mergeDeployConfig(base, [file], [])).to.deep.equal({
      replicas: 4,
      namespace: 'ml',
      resources: {requests: {cpu: '1', memory: '256Mi'}, limits: {memory: '512Mi'}},
    })
  })

  it('later -f files override earlier ones', () => {
    expect(mergeDeployConfig({port: 8000}, [{port: 8001, replicas: 1}, {port: 8002}], [])).to.deep.equal({port: 8002, replicas: 1})
  })

  it('lists are replaced, not merged or appended', () => {
    expect(mergeDeployConfig({imagePullSecrets: ['a', 'b']}, [{imagePullSecrets: ['c']}], [])).to.deep.equal({imagePullSecrets: ['c']})
  })

  it('a mapping replaces a scalar and false replaces a mapping (autoscaling: false turns it off)', () => {
    expect(mergeDeployConfig({autoscaling: {minReplicas: 2}}, [{autoscaling: false}], [])).to.deep.equal({autoscaling: false})
    expect(mergeDeployConfig({autoscaling: false}, [{autoscaling: {maxReplicas: 3}}], [])).to.deep.equal({autoscaling: {maxReplicas: 3}})
  })

  it('--set wins over the -f files and mlops.yaml', () => {
    expect(mergeDeployConfig({replicas: 1}, [{replicas: 2}], ['replicas=3'])).to.deep.equal({replicas: 3})
  })

  it('later --set of the same key wins', () => {
    expect(mergeDeployConfig({}, [], ['replicas=3', 'replicas=5'])).to.deep.equal({replicas: 5})
  })

  it('--set values are YAML scalars: integers, floats, booleans, null, quoted strings, plain strings', () => {
    const merged = mergeDeployConfig(
      {},
      [],
      ['replicas=3', 'a=1.5', 'b=true', 'c=false', 'd=null', 'e=~', 'f="3"', 'g=yes', 'h=500m', 'i=1e3', 'j=0x10'],
    )
    expect(merged).to.deep.equal({replicas: 3, a: 1.5, b: true, c: false, d: null, e: null, f: '3', g: 'yes', h: '500m', i: 1000, j: 16})
  })

  it('--set KEY= (nothing after =) sets the empty string', () => {
    expect(mergeDeployConfig({namespace: 'ml'}, [], ['namespace='])).to.deep.equal({namespace: ''})
  })

  it('--set VALUE may itself contain "=": only the first one splits', () => {
    expect(mergeDeployConfig({}, [], ['nodeSelector.pool=a=b'])).to.deep.equal({nodeSelector: {pool: 'a=b'}})
  })

  it('--set YAML flow collections give a list or a mapping', () => {
    expect(mergeDeployConfig({}, [], ['imagePullSecrets=[a, b]', 'nodeSelector={pool: gpu}'])).to.deep.equal({
      imagePullSecrets: ['a', 'b'],
      nodeSelector: {pool: 'gpu'},
    })
  })

  it('--set dotted paths create the mappings they go through and keep their siblings', () => {
    expect(mergeDeployConfig({resources: {limits: {memory: '512Mi'}}}, [], ['resources.limits.cpu=2', 'gcs.secretName=key'])).to.deep.equal(
      {resources: {limits: {memory: '512Mi', cpu: 2}}, gcs: {secretName: 'key'}},
    )
  })

  it('--set through a scalar replaces the scalar with a mapping', () => {
    expect(mergeDeployConfig({autoscaling: false}, [], ['autoscaling.maxReplicas=4'])).to.deep.equal({autoscaling: {maxReplicas: 4}})
  })

  it('--set accepts a leading "deploy." (the key as mlops.yaml spells it); only the first one is stripped', () => {
    expect(mergeDeployConfig({}, [], ['deploy.replicas=3', 'deploy.gcs.secretName=key'])).to.deep.equal({
      replicas: 3,
      gcs: {secretName: 'key'},
    })
    expect(mergeDeployConfig({}, [], ['deploy.deploy.x=1'])).to.deep.equal({deploy: {x: 1}})
  })

  it("mlops.yaml's deploy section is not changed by the merge", () => {
    const base: DeployConfig = {gcs: {secretName: 'key'}, resources: {limits: {cpu: '1'}}}
    mergeDeployConfig(base, [{resources: {limits: {cpu: '2'}}}], ['gcs.serviceAccount=sa'])
    expect(base).to.deep.equal({gcs: {secretName: 'key'}, resources: {limits: {cpu: '1'}}})
  })

  for (const bad of ['replicas', '=3', '', 'replicas:3', 'replicas 3']) {
    it(`bad --set ${JSON.stringify(bad)}: refused with KEY=VALUE and an example`, () => {
      let thrown: unknown
      try {
        mergeDeployConfig({}, [], [bad])
      } catch (error) {
        thrown = error
      }

      expect(thrown).to.be.instanceOf(UsageError)
      expect((thrown as UsageError).message).to.equal(`invalid --set "${bad}": use KEY=VALUE, e.g. --set replicas=3`)
    })
  }
})

const SHA = 'ab'.repeat(32)
function manifest(extra: Partial<ModelManifest> = {}): ModelManifest {
  return {
    schemaVersion: 1,
    name: 'iris',
    version: '3',
    file: 'model.onnx',
    format: 'onnx',
    size: 10 * 1024 * 1024,
    sha256: SHA,
    crc32c: 'AAAAAA==',
    createdAt: '2024-01-01T00:00:00.000Z',
    createdBy: 'test',
    source: {file: 'model.onnx'},
    metadata: {},
    ...extra,
  }
}

const STORE: StoreSettings = {uri: 'gs://bucket/models', baseDir: '/project', timeoutSeconds: 30}
const IMAGES = {loader: 'registry.example.com/iris/loader:abc', api: 'registry.example.com/iris/api:abc'}

describe('manifestValues: what the templates see', () => {
  it('a 10 MiB model with nothing configured: names, labels, annotations, defaults, loader and API settings', () => {
    const values = manifestValues({project: {dir: '/project', values: {}}, deploy: {}, manifest: manifest(), images: IMAGES, store: STORE})
    expect(values).to.deep.equal({
      app: {
        name: 'iris',
        namespace: 'iris',
        labels: {
          'app.kubernetes.io/name': 'iris',
          'app.kubernetes.io/component': 'model-server',
          'app.kubernetes.io/managed-by': 'mlops',
          'mlops.io/model': 'iris',
        },
        selector: {'app.kubernetes.io/name': 'iris'},
      },
      model: {
        annotations: {
          'mlops.io/model': 'iris',
          'mlops.io/model-version': '3',
          'mlops.io/model-sha256': SHA,
          'mlops.io/model-size': '10485760',
          'mlops.io/loader-image': IMAGES.loader,
          'mlops.io/api-image': IMAGES.api,
        },
      },
      images: IMAGES,
      deploy: {
        replicas: 2,
        port: 8000,
        resources: {requests: {cpu: '100m', memory: '256Mi'}, limits: {cpu: '1', memory: '512Mi'}},
        autoscaling: {minReplicas: 2, maxReplicas: 10, targetCPUUtilization: 70},
        pdb: {minAvailable: 1},
        // 60 s + 10 MiB at 20 MiB/s, rounded up = 61 s of load time; 60 s more for the rollout.
        progressDeadlineSeconds: 121,
        startupFailureThreshold: 31,
        imagePullSecrets: null,
        nodeSelector: null,
        tolerations: null,
      },
      loader: {
        args: ['iris@3', '--to', '/workdir/model.onnx'],
        env: [
          {name: 'MLOPS_STORE', value: 'gs://bucket/models'},
          {name: 'MLOPS_LOG_FORMAT', value: 'json'},
        ],
        volumeMounts: [{name: 'workdir', mountPath: '/workdir'}],
        resources: {requests: {cpu: '100m', memory: '128Mi'}, limits: {memory: '256Mi'}},
        initContainers: [
          {
            name: 'model-loader',
            image: IMAGES.loader,
            imagePullPolicy: 'IfNotPresent',
            args: ['iris@3', '--to', '/workdir/model.onnx'],
            env: [
              {name: 'MLOPS_STORE', value: 'gs://bucket/models'},
              {name: 'MLOPS_LOG_FORMAT', value: 'json'},
            ],
            volumeMounts: [{name: 'workdir', mountPath: '/workdir'}],
            terminationMessagePolicy: 'FallbackToLogsOnError',
            resources: {requests: {cpu: '100m', memory: '128Mi'}, limits: {memory: '256Mi'}},
            securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: ['ALL']}},
          },
        ],
      },
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: ['ALL']}},
      delivery: {kind: 'init-container'},
      api: {
        env: [
          {name: 'MODEL_FILEPATH', value: '/workdir/model.onnx'},
          {name: 'MODEL_NAME', value: 'iris'},
          {name: 'MODEL_VERSION', value: '3'},
          {name: 'PORT', value: '8000'},
          {name: 'MLOPS_WORKERS', value: '1'},
          {name: 'MLOPS_SHADOW_CONFIG', value: '/etc/mlops/shadow/shadow.json'},
        ],
      },
      gcs: {serviceAccount: false, workloadIdentity: '', podServiceAccount: 'default', automountToken: false},
      // 1.5 × 10 MiB = 15 MiB, + 64 MiB of headroom.
      // The shadow config: optional, so that no pod waits for it (deploy --shadow writes it).
      volumes: [
        {name: 'workdir', emptyDir: {sizeLimit: '79Mi'}},
        {name: 'shadow-config', configMap: {name: 'iris-shadow', optional: true}},
      ],
      pod: {
        workdir: '/workdir',
        readyPath: '/ready',
        healthPath: '/health',
        containers: {loader: 'model-loader', api: 'api'},
        portName: 'http',
        shadow: {volume: 'shadow-config', dir: '/etc/mlops/shadow'},
      },
    })
  })

  it('a model with labels: the loader writes them (--labels-to) and the API reads them (LABEL_FILEPATH)', () => {
    const values = manifestValues({
      project: {dir: '/project', values: {}},
      deploy: {},
      manifest: manifest({labels: {file: 'labels.json', sha256: SHA, size: 40, values: {0: 'setosa'}}}),
      images: IMAGES,
      store: STORE,
    }) as {loader: {args: string[]}; api: {env: unknown[]}}
    expect(values.loader.args).to.deep.equal(['iris@3', '--to', '/workdir/model.onnx', '--labels-to', '/workdir/labels.json'])
    expect(values.api.env).to.deep.equal([
      {name: 'MODEL_FILEPATH', value: '/workdir/model.onnx'},
      {name: 'LABEL_FILEPATH', value: '/workdir/labels.json'},
      {name: 'MODEL_NAME', value: 'iris'},
      {name: 'MODEL_VERSION', value: '3'},
      {name: 'PORT', value: '8000'},
      {name: 'MLOPS_WORKERS', value: '1'},
      {name: 'MLOPS_SHADOW_CONFIG', value: '/etc/mlops/shadow/shadow.json'},
    ])
  })

  it('name: deploy.name, else the project name, else the model name; namespace: deploy.namespace, else the name', () => {
    const name = (project: {name?: string}, deploy: DeployConfig) =>
      manifestValues({project: {dir: '/p', values: project}, deploy, manifest: manifest(), images: IMAGES, store: STORE}).app as {
        name: string
        namespace: string
      }
    expect(name({}, {})).to.include({name: 'iris', namespace: 'iris'})
    expect(name({name: 'flowers'}, {})).to.include({name: 'flowers', namespace: 'flowers'})
    expect(name({name: 'flowers'}, {name: 'api', namespace: 'serving'})).to.include({name: 'api', namespace: 'serving'})
  })

  it('configured values: pull secrets as {name}, node selector, tolerations, autoscaling off, pdb and port; empty lists and maps stay null', () => {
    const deploy: DeployConfig = {
      replicas: 5,
      port: 9000,
      autoscaling: false,
      pdb: {minAvailable: '50%'},
      imagePullSecrets: ['regcred'],
      nodeSelector: {pool: 'cpu'},
      tolerations: [{key: 'dedicated', operator: 'Equal', value: 'ml', effect: 'NoSchedule'}],
      progressDeadlineSeconds: 600,
    }
    const values = manifestValues({project: {dir: '/p', values: {}}, deploy, manifest: manifest(), images: IMAGES, store: STORE}) as {
      deploy: Record<string, unknown>
      api: {env: Array<{name: string; value: string}>}
    }
    expect(values.deploy).to.deep.include({
      replicas: 5,
      port: 9000,
      autoscaling: false,
      pdb: {minAvailable: '50%'},
      progressDeadlineSeconds: 600,
      imagePullSecrets: [{name: 'regcred'}],
      nodeSelector: {pool: 'cpu'},
      tolerations: [{key: 'dedicated', operator: 'Equal', value: 'ml', effect: 'NoSchedule'}],
    })
    expect(values.api.env.find(e => e.name === 'PORT')).to.deep.equal({name: 'PORT', value: '9000'})
    const empty = manifestValues({
      project: {dir: '/p', values: {}},
      deploy: {imagePullSecrets: [], nodeSelector: {}, tolerations: []},
      manifest: manifest(),
      images: IMAGES,
      store: STORE,
    }) as {deploy: Record<string, unknown>}
    expect(empty.deploy).to.deep.include({imagePullSecrets: null, nodeSelector: null, tolerations: null})
  })

  it('a partial autoscaling section is completed from the defaults', () => {
    const values = manifestValues({
      project: {dir: '/p', values: {}},
      deploy: {autoscaling: {maxReplicas: 4}},
      manifest: manifest(),
      images: IMAGES,
      store: STORE,
    }) as {deploy: {autoscaling: unknown}}
    expect(values.deploy.autoscaling).to.deep.equal({minReplicas: 2, maxReplicas: 4, targetCPUUtilization: 70})
  })

  it("store settings reach the loader's environment; the default timeout is left out", () => {
    const store: StoreSettings = {
      uri: 'gs://b',
      baseDir: '/p',
      endpoint: 'http://127.0.0.1:4443',
      anonymous: true,
      project: 'proj',
      timeoutSeconds: 90,
    }
    const values = manifestValues({project: {dir: '/p', values: {}}, deploy: {}, manifest: manifest(), images: IMAGES, store}) as {
      loader: {env: unknown[]}
    }
    expect(values.loader.env).to.deep.equal([
      {name: 'MLOPS_STORE', value: 'gs://b'},
      {name: 'MLOPS_LOG_FORMAT', value: 'json'},
      {name: 'MLOPS_GCS_ENDPOINT', value: 'http://127.0.0.1:4443'},
      {name: 'MLOPS_GCS_ANONYMOUS', value: 'true'},
      {name: 'MLOPS_GCS_PROJECT', value: 'proj'},
      {name: 'MLOPS_STORE_TIMEOUT', value: '90'},
    ])
  })

  it('gcs.secretName mounts the key for the loader; serviceAccount and workloadIdentity pass through', () => {
    const deploy: DeployConfig = {
      gcs: {secretName: 'gcs-key', serviceAccount: 'loader', workloadIdentity: 'loader@proj.iam.gserviceaccount.com'},
    }
    const values = manifestValues({project: {dir: '/p', values: {}}, deploy, manifest: manifest(), images: IMAGES, store: STORE})
    expect(values.loader.env).to.deep.include({name: 'GOOGLE_APPLICATION_CREDENTIALS', value: '/var/secrets/google/key.json'})
    expect(values.loader.volumeMounts).to.deep.equal([
      {name: 'workdir', mountPath: '/workdir'},
      {name: 'gcs-key', mountPath: '/var/secrets/google', readOnly: true},
    ])
    expect(values.volumes).to.deep.equal([
      {name: 'workdir', emptyDir: {sizeLimit: '79Mi'}},
      {name: 'gcs-key', secret: {secretName: 'gcs-key'}},
      {name: 'shadow-config', configMap: {name: 'iris-shadow', optional: true}},
    ])
    expect(values.gcs).to.deep.equal({
      serviceAccount: 'loader',
      workloadIdentity: 'loader@proj.iam.gserviceaccount.com',
      podServiceAccount: 'loader',
      automountToken: false,
    })
  })

  it('a 2 GiB model: longer rollout deadline and start-up probe, a larger workdir', () => {
    const values = manifestValues({
      project: {dir: '/p', values: {}},
      deploy: {},
      manifest: manifest({size: 2 * 1024 ** 3}),
      images: IMAGES,
      store: STORE,
    })
    // 60 + 2048/20 = 162.4 → 163 s
    expect(values.deploy).to.deep.include({progressDeadlineSeconds: 223, startupFailureThreshold: 82})
    expect(values.volumes).to.deep.equal([
      {name: 'workdir', emptyDir: {sizeLimit: `${3072 + 64}Mi`}},
      {name: 'shadow-config', configMap: {name: 'iris-shadow', optional: true}},
    ])
  })
})

describe('manifestValues with an image volume (deploy.delivery image-volume)', () => {
  it('no initContainer, the work volume is the image by digest, the API container pins the sha256, the revision says how it gets the model', () => {
    const image = `registry.example.com/team/iris-model@sha256:${'b'.repeat(64)}`
    const values = manifestValues({
      project: {dir: '/p', values: {}},
      deploy: {gcs: {secretName: 'gcs-key'}},
      manifest: manifest(),
      images: IMAGES,
      store: STORE,
      delivery: {kind: 'image-volume', image},
    })
    expect(values.loader.initContainers).to.equal(null)
    expect(values.volumes).to.deep.equal([
      {name: 'workdir', image: {reference: image, pullPolicy: 'IfNotPresent'}},
      {name: 'shadow-config', configMap: {name: 'iris-shadow', optional: true}},
    ])
    expect(values.api.env).to.deep.include({name: 'MODEL_SHA256', value: SHA})
    expect(values.model.annotations).to.include({'mlops.io/delivery': 'image-volume', 'mlops.io/model-image': image})
  })

  it('serve answers the reference set from the image volume only when the published image carries it (not when only the store has one)', () => {
    const image = `registry.example.com/team/iris-model@sha256:${'b'.repeat(64)}`
    const env = (delivery: {kind: 'image-volume'; image: string; reference?: boolean}) =>
      manifestValues({
        project: {dir: '/p', values: {}},
        deploy: {},
        manifest: manifest(),
        images: IMAGES,
        store: STORE,
        delivery,
        reference: true,
      }).api.env
    expect(env({kind: 'image-volume', image, reference: true})).to.deep.include({
      name: 'MODEL_REFERENCE_FILEPATH',
      value: '/workdir/reference.json',
    })
    expect(env({kind: 'image-volume', image}).map(e => e.name)).to.not.include('MODEL_REFERENCE_FILEPATH')
  })
})
