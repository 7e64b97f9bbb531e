import {runCommand} from '@oclif/test'
import {expect} from 'chai'
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {parseAllDocuments} from 'yaml'

import {ExitCode} from '../../src/errors.js'
import {renderManifests} from '../../src/manifests/render.js'
import {inspectModelFile} from '../../src/store/model-file.js'
import {type StoreFixture, fixture, makeStore, tempDir} from '../helpers/stores.js'

const root = join(import.meta.dirname, '..', '..')

describe('mlops render', () => {
  let s: StoreFixture
  let project: string

  before(async () => {
    s = await makeStore('gcs')
    await s.store.push({
      model: await inspectModelFile(fixture('iris_svc.onnx'), fixture('iris_labels.json')),
      name: 'iris',
      metadata: {},
      workDir: tempDir(),
    })
    await s.store.setAlias({name: 'iris', ref: '1'}, 'prod')
  })

  beforeEach(() => {
    project = tempDir()
    writeFileSync(
      join(project, 'mlops.yaml'),
      `name: iris\nmodel:\n  name: iris\nstore:\n  uri: ${s.uri}\n  endpoint: ${s.env.MLOPS_GCS_ENDPOINT}\nimage:\n  repository: registry.example.com/team\n  tag: v7\n`,
    )
  })

  async function render(...args: string[]) {
    const result = await runCommand(['render', '--config', join(project, 'mlops.yaml'), ...args], {root})
    const objects = result.error ? [] : parseAllDocuments(result.stdout).map(doc => doc.toJS())
    return {...result, objects, exitCode: (result.error as {oclif?: {exit?: number}} | undefined)?.oclif?.exit ?? 0}
  }

  const find = (objects: any[], kind: string) => objects.find(o => o.kind === kind)

  it('renders Namespace, Deployment, Service, HPA (autoscaling/v2) and PDB with the model pinned by version and sha256', async () => {
    const {objects, stdout, exitCode, stderr} = await render('--model', 'iris@prod')
    expect(exitCode, stderr).to.equal(0)
    expect(objects.map(o => `${o.apiVersion}/${o.kind}`)).to.deep.equal([
      'v1/Namespace',
      'apps/v1/Deployment',
      'autoscaling/v2/HorizontalPodAutoscaler',
      'policy/v1/PodDisruptionBudget',
      'v1/Service',
    ])
    expect(stdout).to.not.match(/&a\d|\*a\d/)
    const deployment = find(objects, 'Deployment')
    expect(deployment.metadata.annotations).to.include({
      'mlops.io/model-version': '1',
      'mlops.io/model-sha256': 'd1f497a1f053d7cc43830cc84d0ecdc65e2dd370a4d3dedd4a49b13523e3a067',
    })
    expect(deployment.spec.replicas, 'the autoscaler owns replicas').to.equal(undefined)
    const pod = deployment.spec.template.spec
    const [loader] = pod.initContainers
    expect(loader).to.include({
      name: 'model-loader',
      image: 'registry.example.com/team/loader:v7',
      terminationMessagePolicy: 'FallbackToLogsOnError',
    })
    expect(loader.args).to.deep.equal(['iris@1', '--to', '/workdir/model.onnx', '--labels-to', '/workdir/labels.json'])
    expect(loader.env).to.deep.include({name: 'MLOPS_STORE', value: s.uri})
    const [api] = pod.containers
    expect(api.image).to.equal('registry.example.com/team/api:v7')
    expect(api.readinessProbe.httpGet.path).to.equal('/ready')
    expect(api.startupProbe.httpGet.path).to.equal('/ready')
    expect(api.livenessProbe.httpGet.path).to.equal('/health')
    // A pod going away (a rollout, a canary removed) leaves the endpoints before serve stops listening.
    expect(api.lifecycle).to.deep.equal({preStop: {sleep: {seconds: 5}}})
    for (const container of [loader, api])
      expect(container.securityContext).to.deep.equal({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: {drop: ['ALL']},
      })
    expect(pod.securityContext).to.include({runAsNonRoot: true, runAsUser: 1000})
    expect(pod.volumes[0]).to.deep.include({name: 'workdir'})
    expect(pod.volumes[0].emptyDir.sizeLimit).to.match(/^\d+Mi$/)
    expect(find(objects, 'HorizontalPodAutoscaler').spec).to.deep.include({minReplicas: 2, maxReplicas: 10})
  })

  it('values: mlops.yaml deploy section, then -f files, then --set (later wins); autoscaling off keeps replicas', async () => {
    writeFileSync(join(project, 'staging.yaml'), 'replicas: 5\nnamespace: staging\nresources:\n  limits:\n    memory: 2Gi\n')
    const {objects} = await render(
      '-f',
      join(project, 'staging.yaml'),
      '--set',
      'autoscaling=false',
      '--set',
      'replicas=3',
      '--set',
      'deploy.resources.limits.cpu=2',
    )
    const deployment = find(objects, 'Deployment')
    expect(deployment.metadata.namespace).to.equal('staging')
    expect(deployment.spec.replicas).to.equal(3)
    expect(deployment.spec.template.spec.containers[0].resources.limits).to.deep.equal({memory: '2Gi', cpu: 2})
    expect(find(objects, 'HorizontalPodAutoscaler')).to.equal(undefined)
  })

  it('GCS credentials: a key Secret mounted for the loader, or a Workload Identity service account', async () => {
    const secret = find((await render('--set', 'gcs.secretName=gcs-key')).objects, 'Deployment').spec.template.spec
    expect(secret.volumes).to.deep.include({name: 'gcs-key', secret: {secretName: 'gcs-key'}})
    expect(secret.initContainers[0].env).to.deep.include({name: 'GOOGLE_APPLICATION_CREDENTIALS', value: '/var/secrets/google/key.json'})
    const wi = (await render('--set', 'gcs.serviceAccount=loader', '--set', 'gcs.workloadIdentity=loader@p.iam.gserviceaccount.com'))
      .objects
    expect(find(wi, 'ServiceAccount').metadata.annotations).to.deep.equal({
      'iam.gke.io/gcp-service-account': 'loader@p.iam.gserviceaccount.com',
    })
    expect(find(wi, 'Deployment').spec.template.spec.serviceAccountName).to.equal('loader')
  })

  it('pod placement and pull credentials: deploy.nodeSelector, tolerations and imagePullSecrets reach the pod spec, and are left out when not set', async () => {
    const plain = find((await render()).objects, 'Deployment').spec.template.spec
    for (const field of ['nodeSelector', 'tolerations', 'imagePullSecrets']) expect(plain, field).to.not.have.property(field)
    writeFileSync(
      join(project, 'mlops.yaml'),
      `${readFileSync(join(project, 'mlops.yaml'), 'utf8')}deploy:
  nodeSelector: {cloud.google.com/gke-nodepool: models}
  tolerations: [{key: dedicated, operator: Equal, value: models, effect: NoSchedule}]
  imagePullSecrets: [registry-pull]
`,
    )
    const pod = find((await render()).objects, 'Deployment').spec.template.spec
    expect(pod.nodeSelector).to.deep.equal({'cloud.google.com/gke-nodepool': 'models'})
    expect(pod.tolerations).to.deep.equal([{key: 'dedicated', operator: 'Equal', value: 'models', effect: 'NoSchedule'}])
    expect(pod.imagePullSecrets).to.deep.equal([{name: 'registry-pull'}])
  })

  it('deploy.progressDeadlineSeconds replaces the size-based deadline; a store.timeout other than the default reaches the loader', async () => {
    const deployment = find((await render('--set', 'progressDeadlineSeconds=45')).objects, 'Deployment')
    expect(deployment.spec.progressDeadlineSeconds).to.equal(45)
    expect(deployment.spec.template.spec.initContainers[0].env.map((e: {name: string}) => e.name)).to.not.include('MLOPS_STORE_TIMEOUT')
    const timed = find((await render('--store-timeout', '7')).objects, 'Deployment')
    expect(timed.spec.template.spec.initContainers[0].env).to.deep.include({name: 'MLOPS_STORE_TIMEOUT', value: '7'})
  })

  for (const [what, yaml, message] of [
    [
      'a toleration effect Kubernetes does not have',
      'deploy:\n  tolerations: [{key: a, effect: Sometimes}]\n',
      /deploy\.tolerations\.0\.effect: must be equal to one of the allowed values/,
    ],
    [
      'an imagePullSecrets name with capitals',
      'deploy:\n  imagePullSecrets: [Registry]\n',
      /deploy\.imagePullSecrets\.0: string "Registry" is not a Secret name/,
    ],
    ['a nodeSelector that is a list', 'deploy:\n  nodeSelector: [a]\n', /deploy\.nodeSelector/],
    ['a progress deadline under 10 s', 'deploy:\n  progressDeadlineSeconds: 3\n', /deploy\.progressDeadlineSeconds/],
  ] as const) {
    it(`bad input in mlops.yaml: ${what} → exit 2 naming the field`, async () => {
      writeFileSync(join(project, 'mlops.yaml'), `${readFileSync(join(project, 'mlops.yaml'), 'utf8')}${yaml}`)
      const {exitCode, stderr} = await render()
      expect(exitCode).to.equal(ExitCode.USAGE)
      expect(stderr).to.match(message)
    })
  }

  it('a value can never inject YAML: it is inserted as a quoted scalar', () => {
    const dir = tempDir()
    writeFileSync(
      join(dir, 'service.yaml'),
      'apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ app.name }}\n  namespace: {{ app.namespace }}\n',
    )
    const values = {app: {name: 'x\nkind: Secret\n---\napiVersion: v1', namespace: 'a: b'}}
    const files = renderManifests(values, [dir])
    expect(files[0].objects).to.deep.equal([
      {apiVersion: 'v1', kind: 'Service', metadata: {name: 'x\nkind: Secret\n---\napiVersion: v1', namespace: 'a: b'}},
    ])
  })

  it('images are pinned by digest when .mlops/state.json has one for these tags', async () => {
    mkdirSync(join(project, '.mlops'))
    const digest = `sha256:${'a'.repeat(64)}`
    writeFileSync(
      join(project, '.mlops', 'state.json'),
      JSON.stringify({
        images: {api: {ref: 'registry.example.com/team/api:v7', digest, pinned: `registry.example.com/team/api@${digest}`, pushedAt: ''}},
      }),
    )
    const pod = find((await render()).objects, 'Deployment').spec.template.spec
    expect(pod.containers[0].image).to.equal(`registry.example.com/team/api@${digest}`)
    expect(pod.initContainers[0].image).to.equal('registry.example.com/team/loader:v7')
  })

  it('a project manifests/ file overrides the built-in template of the same name', async () => {
    mkdirSync(join(project, 'manifests'))
    writeFileSync(
      join(project, 'manifests', 'service.yaml'),
      [
        'apiVersion: v1',
        'kind: Service',
        'metadata:',
        '  name: {{ app.name }}',
        '  namespace: {{ app.namespace }}',
        'spec:',
        '  type: LoadBalancer',
        '  selector: {{ app.selector }}',
        '  ports: [{port: 80, targetPort: http}]',
      ].join('\n') + '\n',
    )
    expect(find((await render()).objects, 'Service').spec.type).to.equal('LoadBalancer')
  })

  it('--out writes one file per template', async () => {
    const out = join(tempDir(), 'rendered')
    const {exitCode} = await render('--out', out)
    expect(exitCode).to.equal(0)
    expect(readFileSync(join(out, 'deployment.yaml'), 'utf8')).to.match(
      /^# Source: deployment\.yaml\napiVersion: apps\/v1\nkind: Deployment/,
    )
  })

  for (const [what, args, exitCode, message] of [
    ['unknown model', ['--model', 'nope@1'], ExitCode.NOT_FOUND, /model "nope" not found/],
    ['--set without =', ['--set', 'replicas'], ExitCode.USAGE, /invalid --set "replicas"/],
    [
      'unreadable values file',
      ['-f', '/nonexistent/values.yaml'],
      ExitCode.USAGE,
      /values file \/nonexistent\/values\.yaml cannot be read/,
    ],
    ['a template with an unknown value', [], ExitCode.USAGE, /unknown value \{\{ app\.nam \}\}/],
  ] as const) {
    it(`bad input: ${what} → exit ${exitCode}`, async () => {
      if (what === 'a template with an unknown value') {
        mkdirSync(join(project, 'manifests'))
        writeFileSync(join(project, 'manifests', 'service.yaml'), 'apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ app.nam }}\n')
      }

      const {exitCode: code, stderr} = await render(...args)
      expect(code).to.equal(exitCode)
      expect(stderr).to.match(message)
    })
  }

  for (const [what, args, message] of [
    [
      '--set replicas=abc',
      ['--set', 'replicas=abc'],
      /^Error: deploy values \(mlops\.yaml, then -f files, then --set\): deploy\.replicas: expected integer, got string "abc"$/m,
    ],
    ['--set replicaz=3 (a typo)', ['--set', 'replicaz=3'], /unknown key "replicaz" in deploy[\s\S]*Hint: did you mean "replicas"\?/],
    ['--set replicas=-1', ['--set', 'replicas=-1'], /deploy\.replicas: must be >= 0/],
    ['--set port=70000', ['--set', 'port=70000'], /deploy\.port: must be <= 65535/],
    [
      '--set resources.limits.memory=lots',
      ['--set', 'resources.limits.memory=lots'],
      /deploy\.resources\.limits\.memory: string "lots" is not a Kubernetes quantity/,
    ],
    ['--set resources.limit.cpu=1 (a typo)', ['--set', 'resources.limit.cpu=1'], /unknown key "limit" in deploy\.resources/],
    [
      'autoscaling.minReplicas above maxReplicas',
      ['--set', 'autoscaling.minReplicas=5', '--set', 'autoscaling.maxReplicas=2'],
      /deploy\.autoscaling\.minReplicas \(5\) is above maxReplicas \(2\)/,
    ],
    ['-n Bad_NS!', ['-n', 'Bad_NS!'], /deploy\.namespace: string "Bad_NS!" is not a Kubernetes name/],
    ['a -f file with a wrong type', ['-f', 'VALUES'], /deploy\.autoscaling/],
  ] as const) {
    it(`bad input: ${what} → exit 2 before anything renders (also under --dry-run=client)`, async () => {
      writeFileSync(join(project, 'values.yaml'), 'autoscaling: sometimes\n')
      const resolved = args.map(arg => (arg === 'VALUES' ? join(project, 'values.yaml') : arg))
      const {exitCode, stderr, stdout} = await render(...resolved)
      expect(exitCode, stderr).to.equal(ExitCode.USAGE)
      expect(stderr).to.match(message)
      expect(stdout).to.equal('')
      const dryRun = await runCommand(
        ['deploy', '--target', 'k8s', '--dry-run', 'client', '--config', join(project, 'mlops.yaml'), ...resolved],
        {root},
      )
      expect((dryRun.error as {oclif?: {exit?: number}} | undefined)?.oclif?.exit).to.equal(ExitCode.USAGE)
      expect(dryRun.stdout).to.equal('')
    })
  }

  it('a local store → exit 2: pods can only load from gs://', async () => {
    writeFileSync(join(project, 'mlops.yaml'), 'name: iris\nmodel:\n  name: iris\nstore: models\n')
    const {exitCode, stderr} = await render()
    expect(exitCode).to.equal(ExitCode.USAGE)
    expect(stderr).to.match(/^Error: pods cannot read the local store models/)
  })
})
