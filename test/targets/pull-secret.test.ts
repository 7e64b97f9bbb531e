import {CoreV1Api, KubeConfig} from '@kubernetes/client-node'
import {expect} from 'chai'
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {type Cluster, kubeCluster} from '../env/k8s.js'
import {runCli} from '../helpers/cli.js'
import {apiStatus} from '../helpers/kube.js'
import {tempDir} from '../helpers/stores.js'

describe('mlops image secret: the pull Secret from the credentials image push uses', function () {
  this.timeout(120_000)
  let cluster: Cluster
  let core: CoreV1Api
  let project: string
  const password = 's3cr3t-Pa55word-xyz'

  before(() => {
    cluster = kubeCluster()
    const config = new KubeConfig()
    config.loadFromFile(cluster.kubeconfig)
    core = config.makeApiClient(CoreV1Api)
    project = tempDir()
    writeFileSync(
      join(project, 'mlops.yaml'),
      'name: iris\nimage:\n  repository: registry.example.com/team\ndeploy:\n  namespace: pull-secret\n',
    )
  })

  const credentials = {MLOPS_REGISTRY_USERNAME: 'ci', MLOPS_REGISTRY_PASSWORD: password}
  const secretCli = async (args: string[], env: Record<string, string> = credentials) =>
    runCli(['image', 'secret', ...args], {KUBECONFIG: cluster.kubeconfig, DOCKER_CONFIG: tempDir(), ...env}, project)

  it("applies a kubernetes.io/dockerconfigjson Secret (with its namespace) holding the registry's credentials; the output names it and never the password", async () => {
    const result = await secretCli([])
    expect(result.code, result.stderr).to.equal(0)
    expect(result.stdout).to.contain('secret pull-secret/iris-registry created: pull credentials for registry.example.com (user ci)')
    expect(result.stdout).to.contain('imagePullSecrets: [iris-registry]')
    expect(result.stdout + result.stderr).to.not.contain(password)
    const secret = await core.readNamespacedSecret({name: 'iris-registry', namespace: 'pull-secret'})
    expect(secret.type).to.equal('kubernetes.io/dockerconfigjson')
    const config = JSON.parse(Buffer.from(secret.data!['.dockerconfigjson'], 'base64').toString('utf8'))
    expect(config.auths['registry.example.com']).to.deep.equal({
      username: 'ci',
      password,
      auth: Buffer.from(`ci:${password}`).toString('base64'),
    })
  })

  it('re-running it changes nothing; --json carries names only', async () => {
    const result = await secretCli(['--json'])
    expect(result.code, result.stderr).to.equal(0)
    expect(JSON.parse(result.stdout)).to.deep.equal({
      secret: 'iris-registry',
      namespace: 'pull-secret',
      registry: 'registry.example.com',
      username: 'ci',
      result: 'unchanged',
      referenced: false,
    })
    expect(result.stdout).to.not.contain(password)
  })

  it('the credentials from $DOCKER_CONFIG/config.json when no variables are set, under --name', async () => {
    const dockerConfig = tempDir()
    writeFileSync(
      join(dockerConfig, 'config.json'),
      JSON.stringify({auths: {'registry.example.com': {auth: Buffer.from(`robot:${password}`).toString('base64')}}}),
    )
    const result = await secretCli(['--name', 'robot-pull'], {DOCKER_CONFIG: dockerConfig})
    expect(result.code, result.stderr).to.equal(0)
    const secret = await core.readNamespacedSecret({name: 'robot-pull', namespace: 'pull-secret'})
    expect(
      JSON.parse(Buffer.from(secret.data!['.dockerconfigjson'], 'base64').toString('utf8')).auths['registry.example.com'].username,
    ).to.equal('robot')
  })

  for (const [what, args, env, exitCode, message] of [
    ['no credentials for the registry', [], {}, ExitCode.PERMISSION, /^Error: no credentials for registry\.example\.com$/m],
    [
      'empty credential variables (unset in CI)',
      [],
      {MLOPS_REGISTRY_USERNAME: '', MLOPS_REGISTRY_PASSWORD: ''},
      ExitCode.PERMISSION,
      /^Error: no credentials for registry\.example\.com$/m,
    ],
    ['a secret name with capitals', ['--name', 'Pull_Secret'], credentials, ExitCode.USAGE, /^Error: invalid secret name "Pull_Secret"/m],
    ['a username without a password', [], {MLOPS_REGISTRY_USERNAME: 'ci'}, ExitCode.USAGE, /need both a username and a password/],
  ] as const) {
    it(`bad input: ${what} → exit ${exitCode}, nothing applied`, async () => {
      const result = await secretCli([...args, '--namespace', 'never-made'], env)
      expect(result.code, result.stderr).to.equal(exitCode)
      expect(result.stderr).to.match(message)
      expect(await apiStatus(async () => core.readNamespace({name: 'never-made'}))).to.equal(404)
    })
  }

  it('bad input: an identity token (docker login with a token helper) → exit 2: a node cannot pull with it', async () => {
    const dockerConfig = tempDir()
    mkdirSync(dockerConfig, {recursive: true})
    writeFileSync(join(dockerConfig, 'config.json'), JSON.stringify({auths: {'registry.example.com': {identitytoken: 'tok'}}}))
    const result = await secretCli([], {DOCKER_CONFIG: dockerConfig})
    expect(result.code).to.equal(ExitCode.USAGE)
    expect(result.stderr).to.match(/identity token, which a node cannot pull with/)
  })

  it('the restricted RBAC user → exit 6', async () => {
    const result = await secretCli(['--namespace', 'restricted-ns'], {...credentials, KUBECONFIG: cluster.restrictedKubeconfig})
    expect(result.code, result.stderr).to.equal(ExitCode.PERMISSION)
    expect(result.stdout + result.stderr).to.not.contain(password)
  })
})
