import {expect} from 'chai'
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {runCli} from '../helpers/cli.js'
import {tempDir} from '../helpers/stores.js'

describe('cluster commands without a usable kubeconfig', () => {
  const project = tempDir()
  writeFileSync(join(project, 'mlops.yaml'), 'name: iris\nmodel:\n  name: iris\n')
  const home = join(project, 'home')
  mkdirSync(home)

  for (const args of [
    ['status', '--target', 'k8s'],
    ['delete', '--target', 'k8s', '--yes'],
    ['predict', '--target', 'k8s', '--data', '[[1,2,3,4]]'],
  ]) {
    it(`bad input: no KUBECONFIG and no ~/.kube/config → ${args[0]} exits 2 saying so (not client-node's localhost:8080 fallback)`, async () => {
      const run = await runCli(args, {KUBECONFIG: '', HOME: home}, project)
      expect(run.code).to.equal(ExitCode.USAGE)
      expect(run.stderr).to.equal(
        'Error: no kubeconfig found: KUBECONFIG is not set and there is no ~/.kube/config\nHint: set KUBECONFIG, or run gcloud container clusters get-credentials CLUSTER\n',
      )
    })
  }

  it('bad input: a kubeconfig whose server is plain http → exit 2 naming it, no stack trace', async () => {
    const kubeconfig = join(project, 'http.kubeconfig')
    writeFileSync(
      kubeconfig,
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "http://127.0.0.1:9"}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
    )
    const run = await runCli(['status', '--target', 'k8s'], {KUBECONFIG: kubeconfig}, project)
    expect(run.code).to.equal(ExitCode.USAGE)
    expect(run.stderr).to.equal(
      "Error: reading deployment iris/iris: the kubeconfig's server http://127.0.0.1:9 is plain http\nHint: use its https:// address, or set insecure-skip-tls-verify: true for that cluster\n",
    )
  })
})
