import {runCommand} from '@oclif/test'
import {AppsV1Api, KubeConfig} from '@kubernetes/client-node'
import {expect} from 'chai'
import {execFileSync, spawn} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {parse, stringify} from 'yaml'

import {ExitCode} from '../../src/errors.js'
import {TEST_CACHE} from '../env/cache.js'
import {dockerEngine, localRegistry} from '../env/docker.js'
import type {FakeGcs} from '../env/fake-gcs.js'
import {sharedGcs} from '../env/global.js'
import {type Cluster, kubeCluster} from '../env/k8s.js'
import {AuthProxy} from '../helpers/gcs-auth.js'
import {MetadataServer, StsEndpoint} from '../helpers/keyless-auth.js'
import {listFiles, randomBytes, tempDir} from '../helpers/stores.js'

/*
 * `mlops init --ci SYSTEM` writes a release workflow; these tests run that file's own shell steps,
 * in order, as the CI system would, against the suite's servers: the GCS emulator behind a
 * token-checking proxy (reached keylessly: an external_account file exchanged at a local STS, or
 * a metadata server), the Docker engine and a local registry that accepts only the access token
 * the CI would have, and the control plane with kwok's node for `deploy --atomic --json`. What a
 * CI system does outside the shell (a `uses:` action, a gcloud step, a job's OIDC token) the test
 * does in its place, and asserts the file asks for exactly those.
 */

const root = join(import.meta.dirname, '..', '..')
const CHECK_JSONSCHEMA = '0.39.0'

async function init(...args: string[]) {
  const result = await runCommand(['init', ...args], {root})
  return {...result, exitCode: (result.error as {oclif?: {exit?: number}} | undefined)?.oclif?.exit ?? 0}
}

interface Step {
  name: string
  script: string
  env: Record<string, string>
}

interface Ran {
  name: string
  code: number | null
  stdout: string
  stderr: string
}

/** One shell step, as the CI system runs it: bash in the project folder, with exactly this environment. */
async function runStep(dir: string, step: Step, bashArgs: string[]): Promise<Ran> {
  const child = spawn('bash', [...bashArgs, step.script], {cwd: dir, env: step.env, stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', chunk => (stdout += chunk))
  child.stderr.on('data', chunk => (stderr += chunk))
  const code = await new Promise<number | null>(resolve => child.once('close', resolve))
  return {name: step.name, code, stdout, stderr}
}

/**
 * check-jsonschema (PyPI), with SchemaStore's schemas for GitLab CI and Cloud Build vendored in,
 * installed once into the test cache: a venv made under a lock (two runs on one machine wait for
 * each other), finished when its stamp file exists.
 */
function checkJsonschema(): string {
  const dir = join(TEST_CACHE, `check-jsonschema-${CHECK_JSONSCHEMA}`)
  const bin = join(dir, 'bin', 'check-jsonschema')
  if (existsSync(join(dir, '.installed'))) return bin
  mkdirSync(TEST_CACHE, {recursive: true})
  execFileSync(
    'flock',
    [
      join(TEST_CACHE, '.check-jsonschema.lock'),
      'bash',
      '-ec',
      `test -e "$1/.installed" && exit 0; rm -rf "$1"; python3 -m venv "$1"; "$1/bin/pip" install --quiet --disable-pip-version-check "check-jsonschema==$2"; touch "$1/.installed"`,
      'install',
      dir,
      CHECK_JSONSCHEMA,
    ],
    {stdio: ['ignore', 'inherit', 'inherit']},
  )
  return bin
}

/** A scaffolded project's workflow with production-like answers: the test environment replaces them through the environment only. */
async function scaffold(system: string): Promise<{dir: string; workflow: string; namespace: string}> {
  const dir = tempDir()
  const namespace = `ci-${system}-${randomBytes(3).toString('hex')}`
  const done = await init(
    dir,
    '--yes',
    '--ci',
    system,
    '--name',
    `ci-${system}`,
    '--store',
    'gs://models-prod/iris',
    '--image-repository',
    'europe-docker.pkg.dev/my-project/models/iris',
    '--namespace',
    namespace,
  )
  expect(done.exitCode, done.stderr).to.equal(0)
  const workflow = {github: '.github/workflows/mlops.yml', gitlab: '.gitlab-ci.yml', cloudbuild: 'cloudbuild.yaml'}[system]!
  expect(done.stdout).to.contain(workflow)
  return {dir, workflow: join(dir, workflow), namespace}
}

describe('mlops init --ci: the release workflow files', function () {
  this.timeout(5 * 60 * 1000)

  it("github: GitHub's own parser (@actions/workflow-parser) finds no error; keyless auth with id-token: write; no run step holds an expression", async () => {
    const {workflow} = await scaffold('github')
    // The package imports its schema JSON without an import attribute, which plain Node 20 refuses
    // (ERR_IMPORT_ASSERTION_TYPE_MISSING); the tests run through tsx, which loads it.
    const {NoOperationTraceWriter, parseWorkflow} = await import('@actions/workflow-parser')
    const parsed = parseWorkflow({name: 'mlops.yml', content: readFileSync(workflow, 'utf8')}, new NoOperationTraceWriter())
    expect(parsed.context.errors.getErrors().map(error => error.message)).to.deep.equal([])
    // The parser does check: a misspelt key is an error.
    const broken = parseWorkflow(
      {name: 'broken.yml', content: readFileSync(workflow, 'utf8').replace('runs-on:', 'runs_on:')},
      new NoOperationTraceWriter(),
    )
    expect(broken.context.errors.getErrors()).to.not.deep.equal([])
    const file = parse(readFileSync(workflow, 'utf8'))
    expect(file.permissions).to.deep.equal({contents: 'read', 'id-token': 'write'})
    expect(Object.keys(file.on)).to.deep.equal(['push', 'workflow_dispatch'])
    expect(file.on.push).to.deep.equal({branches: ['main']})
    for (const step of file.jobs.release.steps as Array<{run?: string}>) expect(step.run ?? '').to.not.contain('${{')
    expect(readFileSync(workflow, 'utf8')).to.not.match(/\{\{[A-Z_]+\}\}/)
  })

  for (const [system, schema] of [
    ['gitlab', 'vendor.gitlab-ci'],
    ['cloudbuild', 'vendor.cloudbuild'],
  ] as const) {
    it(`${system}: valid against SchemaStore's schema (check-jsonschema --builtin-schema ${schema}); a broken copy is not`, async () => {
      const {workflow} = await scaffold(system)
      const bin = checkJsonschema()
      const checked = execFileSync(bin, ['--builtin-schema', schema, workflow], {encoding: 'utf8'})
      expect(checked).to.contain('ok -- validation done')
      const broken = join(tempDir(), 'broken.yaml')
      writeFileSync(broken, readFileSync(workflow, 'utf8').replace(system === 'gitlab' ? 'script:' : 'steps:', 'scripts:'))
      expect(() => execFileSync(bin, ['--builtin-schema', schema, broken], {stdio: 'pipe'})).to.throw()
    })
  }

  it('bad input: --ci circleci → exit 2 naming the choices, nothing written', async () => {
    const dir = tempDir()
    const {exitCode, stderr} = await init(dir, '--yes', '--store', 'gs://m/x', '--ci', 'circleci')
    expect(exitCode).to.equal(ExitCode.USAGE)
    expect(stderr).to.contain('Expected --ci=circleci to be one of: github, gitlab, cloudbuild, none')
    expect(listFiles(dir)).to.deep.equal([])
  })

  it('bad input: --ci github with a local store (no runner or pod can read it) → exit 2, nothing written', async () => {
    const dir = tempDir()
    const {exitCode, stderr} = await init(dir, '--yes', '--ci', 'github')
    expect(exitCode).to.equal(ExitCode.USAGE)
    expect(stderr).to.match(/^Error: --ci github needs a gs:\/\/ store, not \.mlops\/store; nothing was written$/m)
    expect(listFiles(dir)).to.deep.equal([])
  })

  it('bad input: an existing .github/workflows/mlops.yml without --force → exit 4 naming it, nothing written; --force replaces it', async () => {
    const dir = tempDir()
    const workflow = join(dir, '.github', 'workflows', 'mlops.yml')
    mkdirSync(dirname(workflow), {recursive: true})
    writeFileSync(workflow, 'name: mine\n')
    const refused = await init(dir, '--yes', '--store', 'gs://m/x', '--ci', 'github')
    expect(refused.exitCode).to.equal(ExitCode.CONFLICT)
    expect(refused.stderr).to.match(/already has \.github\/workflows\/mlops\.yml; nothing was written/)
    expect(listFiles(dir)).to.deep.equal(['.github/workflows/mlops.yml'])
    expect((await init(dir, '--yes', '--store', 'gs://m/x', '--ci', 'github', '--force')).exitCode).to.equal(0)
    expect(readFileSync(workflow, 'utf8')).to.contain('google-github-actions/auth@v2')
  })

  it('without --ci and without a terminal: no workflow (the default is none, not an error)', async () => {
    const dir = tempDir()
    const args = ['--name', 'p', '--model-name', 'p', '--store', 'gs://m/x', '--image-repository', 'r/p', '--namespace', 'p']
    const more = ['--replicas', '1', '--cpu', '100m', '--memory', '512Mi', '--sample-model', '--no-manifests']
    const {exitCode, stderr} = await init(dir, ...args, ...more)
    expect(exitCode, stderr).to.equal(0)
    expect(listFiles(dir).filter(path => /github|gitlab|cloudbuild/.test(path))).to.deep.equal([])
  })
})

describe('mlops init --ci: the workflow runs step by step against the test environment', function () {
  this.timeout(20 * 60 * 1000)
  const accessToken = `ya29.ci-${randomBytes(18).toString('hex')}`
  let gcs: FakeGcs
  let proxy: AuthProxy
  let sts: StsEndpoint
  let metadata: MetadataServer
  let registry: {address: string; stop: () => void}
  let cluster: Cluster
  let engine: {dockerHost: string; baseImage: string}
  let bucket: string

  before(async () => {
    engine = dockerEngine()
    cluster = kubeCluster()
    gcs = await sharedGcs()
    proxy = await AuthProxy.start(gcs.url, accessToken)
    sts = await StsEndpoint.start(accessToken)
    metadata = await MetadataServer.start(accessToken)
    // The registry takes what Artifact Registry takes from CI: oauth2accesstoken and an access token.
    registry = localRegistry('oauth2accesstoken', accessToken)
    bucket = `ci-${randomBytes(4).toString('hex')}`
    await gcs.createBucket(bucket)
  })

  after(async () => {
    registry?.stop()
    await proxy?.stop()
    await sts?.stop()
    await metadata?.stop()
  })

  beforeEach(() => {
    proxy.reset()
    sts.reset()
    metadata.reset()
  })

  /**
   * The machine a step runs on: a clean environment (nothing of this test process leaks in), an
   * empty HOME (no gcloud login or key file to fall back on), npm's global prefix in a temp folder
   * and offline (`npm install --global "$MLOPS_PACKAGE"` links this repository: bin/run.js, the
   * built bundle), the Docker engine, and the store's endpoint: the proxy that checks tokens.
   */
  function machine(): Record<string, string> {
    const prefix = tempDir('mlops-npm-')
    return {
      PATH: [join(prefix, 'bin'), dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(':'),
      HOME: tempDir('mlops-home-'),
      LANG: 'C.UTF-8',
      npm_config_prefix: prefix,
      npm_config_offline: 'true',
      npm_config_update_notifier: 'false',
      DOCKER_HOST: engine.dockerHost,
      MLOPS_BASE_IMAGE: engine.baseImage,
      MLOPS_GCS_ENDPOINT: proxy.url,
      MLOPS_GCS_ANONYMOUS: 'false',
      MLOPS_STORE_TIMEOUT: '10',
    }
  }

  const store = (system: string) => `gs://${bucket}/${system}`
  const repository = (system: string) => `${registry.address}/ci-${system}`

  /** Runs the steps in order, each to success; none may print a credential. */
  async function runSteps(dir: string, steps: Step[], bashArgs: string[]): Promise<Ran[]> {
    const ran: Ran[] = []
    for (const step of steps) {
      const result = await runStep(dir, step, bashArgs)
      ran.push(result)
      expect(result.code, `step "${step.name}" failed:\n${result.stdout}\n${result.stderr}`).to.equal(0)
      for (const secret of [accessToken, sts.subjectToken])
        expect(result.stdout + result.stderr, `step "${step.name}" printed a credential`).to.not.contain(secret)
    }

    return ran
  }

  /** The last step's --json says the deploy worked with the model the push step pushed; the Deployment says so too. */
  async function expectDeployed(project: {dir: string; namespace: string}, deployOutput: string, system: string): Promise<void> {
    const {dir, namespace} = project
    const pushed = JSON.parse(readFileSync(join(dir, '.mlops', 'model-push.json'), 'utf8')) as {ref: string; sha256: string}
    expect(pushed.ref).to.equal(`ci-${system}@1`)
    expect(pushed.sha256).to.equal('d1f497a1f053d7cc43830cc84d0ecdc65e2dd370a4d3dedd4a49b13523e3a067')
    const deployed = JSON.parse(deployOutput) as {model: string; sha256: string; namespace: string; rollout: string | null}
    // Into mlops.yaml's namespace, from init's answers: the environment changed nothing else.
    expect(deployed).to.include({model: pushed.ref, sha256: pushed.sha256, namespace})
    expect(deployed.rollout).to.be.a('string')
    const config = new KubeConfig()
    config.loadFromFile(cluster.kubeconfig)
    const deployment = await config.makeApiClient(AppsV1Api).readNamespacedDeployment({name: `ci-${system}`, namespace})
    expect(deployment.metadata?.annotations).to.include({'mlops.io/model-sha256': pushed.sha256})
    const api = deployment.spec!.template.spec!.containers.map(container => container.image!)
    const pinned = JSON.parse(readFileSync(join(dir, '.mlops', 'state.json'), 'utf8')).images.api.pinned as string
    expect(pinned).to.match(new RegExp(`^${repository(system)}/api@sha256:[0-9a-f]{64}$`))
    expect(api).to.deep.equal([pinned])
    // The store was reached with the token the keyless exchange handed out, and only with it.
    expect(proxy.requests.length).to.be.greaterThan(0)
    expect(proxy.requests.every(request => request.authorization === `Bearer ${accessToken}`)).to.equal(true)
  }

  it('github: every run: step of .github/workflows/mlops.yml in order, the uses: steps done by the test, deploy --atomic --json succeeds with the pushed sha256', async () => {
    const project = await scaffold('github')
    const {dir, workflow} = project
    const file = parse(readFileSync(workflow, 'utf8'))
    const job = file.jobs.release as {
      steps: Array<{name?: string; uses?: string; run?: string; env?: Record<string, string>; with?: Record<string, string>}>
    }
    // What the actions would do, done here: auth@v2 writes an external_account file and exports
    // GOOGLE_APPLICATION_CREDENTIALS (its access_token output is what the registry takes);
    // get-gke-credentials writes a kubeconfig and exports KUBECONFIG.
    expect(job.steps.filter(step => step.uses).map(step => step.uses)).to.deep.equal([
      'actions/checkout@v4',
      'actions/setup-node@v4',
      'google-github-actions/auth@v2',
      'google-github-actions/get-gke-credentials@v2',
    ])
    const auth = job.steps.find(step => step.uses === 'google-github-actions/auth@v2')!
    expect(auth.with).to.deep.include({
      workload_identity_provider: '${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}',
      service_account: '${{ vars.GCP_SERVICE_ACCOUNT }}',
      token_format: 'access_token',
    })
    const runner = {
      ...machine(),
      GITHUB_ACTIONS: 'true',
      GITHUB_SHA: 'c0ffee0000000000000000000000000000000000',
      GITHUB_WORKSPACE: dir,
      GOOGLE_APPLICATION_CREDENTIALS: sts.writeCredentials(),
      KUBECONFIG: cluster.kubeconfig,
    }
    // The expressions the file uses, as the repository's variables and the auth step's output answer them.
    const expressions: Record<string, string> = {
      'vars.MLOPS_PACKAGE': root,
      'vars.MLOPS_STORE': store('github'),
      'vars.MLOPS_IMAGE_REPOSITORY': repository('github'),
      'steps.auth.outputs.access_token': accessToken,
    }
    const evaluate = (value: string) =>
      String(value).replaceAll(/\$\{\{\s*([\w.-]+)(?:\s*\|\|\s*'([^']*)')?\s*\}\}/g, (_, name: string, fallback?: string) => {
        const answer = expressions[name] ?? fallback
        if (answer === undefined) throw new Error(`the workflow uses \${{ ${name} }}, which this test does not answer`)
        return answer
      })
    const env = (more: Record<string, string> = {}) =>
      Object.fromEntries(Object.entries({...file.env, ...more}).map(([key, value]) => [key, evaluate(String(value))]))
    const steps = job.steps
      .filter(step => step.run)
      .map(step => ({name: step.name ?? step.run!, script: step.run!, env: {...runner, ...env(step.env)}}))
    expect(steps.map(step => step.name)).to.deep.equal(['Install mlops', 'Push the model', 'Build the images', 'Push the images', 'Deploy'])
    expect(file.defaults.run.shell).to.equal('bash')
    // GitHub's `shell: bash` is `bash --noprofile --norc -eo pipefail {0}`.
    const ran = await runSteps(dir, steps, ['--noprofile', '--norc', '-eo', 'pipefail', '-c'])
    await expectDeployed(project, ran.at(-1)!.stdout, 'github')
    // Keyless: the STS exchange carried the CI's OIDC token.
    expect(sts.seen.some(seen => seen.body?.get('subject_token') === sts.subjectToken)).to.equal(true)
  })

  it("gitlab: the job's script lines in order in one shell, with the id_tokens OIDC token exchanged and impersonated, deploy --atomic --json succeeds with the pushed sha256", async () => {
    const project = await scaffold('gitlab')
    const {dir, workflow} = project
    const file = parse(readFileSync(workflow, 'utf8'))
    const job = file.release as {script: string[]; id_tokens: Record<string, {aud: string}>; variables?: Record<string, string>}
    expect(job.id_tokens.GCP_ID_TOKEN.aud).to.equal('https://iam.googleapis.com/$GCP_WORKLOAD_IDENTITY_PROVIDER')
    const provider = 'projects/123456/locations/global/workloadIdentityPools/ci/providers/gitlab'
    const serviceAccount = 'release@my-project.iam.gserviceaccount.com'
    // The agent's kubeconfig, as GitLab hands it to a job: contexts, none of them current, so the
    // deploy reaches the cluster only through MLOPS_KUBE_CONTEXT.
    const kubeconfig = parse(readFileSync(cluster.kubeconfig, 'utf8')) as Record<string, unknown>
    const context = kubeconfig['current-context'] as string
    delete kubeconfig['current-context']
    const agentKubeconfig = join(tempDir('mlops-agent-'), 'kubeconfig')
    writeFileSync(agentKubeconfig, stringify(kubeconfig), {mode: 0o600})
    const env = {
      ...machine(),
      ...file.variables,
      ...job.variables,
      // The project's CI/CD variables, which win over the file's.
      MLOPS_PACKAGE: root,
      MLOPS_STORE: store('gitlab'),
      MLOPS_IMAGE_REPOSITORY: repository('gitlab'),
      GCP_WORKLOAD_IDENTITY_PROVIDER: provider,
      GCP_SERVICE_ACCOUNT: serviceAccount,
      MLOPS_KUBE_CONTEXT: context,
      // What GitLab gives the job: the OIDC token (id_tokens), the agent's kubeconfig, the commit.
      GCP_ID_TOKEN: sts.subjectToken,
      KUBECONFIG: agentKubeconfig,
      CI_COMMIT_SHA: 'c0ffee0000000000000000000000000000000000',
      // Where the test's STS and IAM Credentials endpoints are, and the engine instead of the dind service.
      GCP_STS_URL: sts.url,
      GCP_IAM_CREDENTIALS_URL: sts.iamCredentialsUrl,
      DOCKER_HOST: engine.dockerHost,
    }
    // GitLab runs the script lines in one shell, stopping at the first that fails; the marker
    // before each line (GitLab's log shows `$ line` there) is the test's, to find the last one's output.
    const marker = (i: number) => `@@mlops-test line ${i}@@`
    const script = ['set -eo pipefail', ...job.script.flatMap((line, i) => [`printf '\\n%s\\n' '${marker(i)}'`, line])].join('\n')
    const [ran] = await runSteps(dir, [{name: 'release', script, env}], ['--noprofile', '--norc', '-c'])
    await expectDeployed(project, ran.stdout.split(`${marker(job.script.length - 1)}\n`)[1], 'gitlab')
    expect(sts.seen.some(seen => seen.body?.get('audience') === `//iam.googleapis.com/${provider}`)).to.equal(true)
    expect(sts.seen.some(seen => seen.path === `/v1/projects/-/serviceAccounts/${serviceAccount}:generateAccessToken`)).to.equal(true)
  })

  it('cloudbuild: every node:20 step in order (the gcloud kubeconfig step done by the test), keyless by the metadata server; deploy --atomic --json has the pushed sha256', async () => {
    const project = await scaffold('cloudbuild')
    const {dir, workflow} = project
    const file = parse(readFileSync(workflow, 'utf8')) as {
      substitutions: Record<string, string>
      options: {env: string[]}
      steps: Array<{id: string; name: string; script: string}>
    }
    expect(file.steps.map(step => [step.id, step.name])).to.deep.equal([
      ['kubeconfig', 'gcr.io/google.com/cloudsdktool/cloud-sdk:slim'],
      ['install', 'node:20'],
      ['model', 'node:20'],
      ['images', 'node:20'],
      ['deploy', 'node:20'],
    ])
    // The trigger's substitutions, then options.env as Cloud Build expands it.
    const substitutions: Record<string, string> = {
      ...file.substitutions,
      _MLOPS_PACKAGE: root,
      _MLOPS_STORE: store('cloudbuild'),
      _MLOPS_IMAGE_REPOSITORY: repository('cloudbuild'),
    }
    const buildEnv = Object.fromEntries(
      file.options.env.map(entry => {
        const value = entry.slice(entry.indexOf('=') + 1).replaceAll(/\$\{(_[A-Z_]+)\}/g, (_, name: string) => substitutions[name])
        return [entry.slice(0, entry.indexOf('=')), value]
      }),
    )
    const here = machine()
    const env = {
      ...buildEnv,
      // This machine's npm prefix and Docker engine instead of the build's /workspace and socket; its
      // PATH without the prefix's bin folder, which each step adds itself (steps share no environment).
      ...here,
      PATH: here.PATH.split(':').slice(1).join(':'),
      KUBECONFIG: cluster.kubeconfig,
      GCE_METADATA_HOST: metadata.host,
      METADATA_SERVER_DETECTION: 'ping-only',
    }
    expect(buildEnv).to.include({MLOPS_STORE: store('cloudbuild'), MLOPS_IMAGE_REPOSITORY: repository('cloudbuild')})
    const steps = file.steps.filter(step => step.name === 'node:20').map(step => ({name: step.id, script: step.script, env}))
    const ran = await runSteps(dir, steps, ['--noprofile', '--norc', '-c'])
    await expectDeployed(project, ran.at(-1)!.stdout, 'cloudbuild')
    expect(metadata.tokenRequests().length).to.be.greaterThan(0)
    expect(metadata.tokenRequests().every(seen => seen.flavor === 'Google')).to.equal(true)
  })
})
