import {expect} from 'chai'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {addSecret, redact, redactJson, registerProcessSecrets} from '../../src/util/redact.js'
import {runCli} from '../helpers/cli.js'
import {tempDir} from '../helpers/stores.js'
import {restoreEnv} from '../helpers/env.js'

describe('no output, log or termination message contains a credential it was given', function () {
  this.timeout(60_000)
  const everything = (run: {stdout: string; stderr: string}) => run.stdout + run.stderr

  describe('redact()', () => {
    it('removes userinfo from every URL in a text, whatever the scheme', () => {
      expect(redact('request to http://user:pa55@127.0.0.1:1/b failed; DOCKER_HOST tcp://u:p@h:2375; https://tok@x.example/y')).to.equal(
        'request to http://***@127.0.0.1:1/b failed; DOCKER_HOST tcp://***@h:2375; https://***@x.example/y',
      )
    })

    it('leaves URLs without userinfo and e-mail addresses alone, a port followed by anything included', () => {
      for (const text of [
        'http://127.0.0.1:4443/storage and loader@project.iam.gserviceaccount.com',
        'cannot reach http://127.0.0.1:1: connect ECONNREFUSED',
        'tcp://127.0.0.1:2375, then',
        'use http://HOST:PORT',
      ])
        expect(redact(text)).to.equal(text)
    })

    it('bad input: a URL given as a model ref is refused without echoing it (it may carry user:password)', async () => {
      const run = await runCli(['model', 'show', 'http://ref-user:ref-secret@127.0.0.1:1'])
      expect(run.code).to.equal(ExitCode.USAGE)
      expect(run.stderr).to.match(/^Error: a model ref is NAME@VERSION \(or @ALIAS, @latest\), not a URL$/m)
      expect(run.stderr).to.not.contain('ref-secret')
    })

    it('removes registered secrets, from --password VALUE, --token=VALUE and the registry password variable', () => {
      const saved = process.env.MLOPS_REGISTRY_PASSWORD
      process.env.MLOPS_REGISTRY_PASSWORD = 'env-secret-123'
      registerProcessSecrets(['image', 'push', '--password', 'flag-secret-1', '--token=flag-secret-2'])
      restoreEnv('MLOPS_REGISTRY_PASSWORD', saved)
      expect(redact('a flag-secret-1 b flag-secret-2 c env-secret-123')).to.equal('a *** b *** c ***')
      expect(redactJson({error: {message: 'x flag-secret-1', nested: ['env-secret-123']}})).to.deep.equal({
        error: {message: 'x ***', nested: ['***']},
      })
    })

    it('ignores values too short to be secrets (they would blank out words)', () => {
      addSecret('ab')
      expect(redact('ab abc')).to.equal('ab abc')
    })
  })

  describe('through the CLI', () => {
    const project = tempDir()
    writeFileSync(join(project, 'mlops.yaml'), 'name: iris\n')

    it("userinfo in --gcs-endpoint (http://gcs-user:PASSWORD@...): exit 2, not in the error, the --json error, the loader's JSON log or its termination message", async () => {
      const endpoint = 'http://gcs-user:gcs-pa55w0rd@127.0.0.1:1'
      const store = ['--store', 'gs://bucket1', '--gcs-endpoint', endpoint, '--store-timeout', '1']
      const list = await runCli(['model', 'list', ...store], {}, project)
      expect(list.code).to.equal(ExitCode.USAGE)
      expect(list.stderr.split('\n')[0]).to.equal('Error: the GCS endpoint has credentials in it (USER:PASSWORD@); GCS takes none there')
      const json = await runCli(['model', 'list', ...store, '--json'], {}, project)
      expect(JSON.parse(json.stdout).error.message).to.contain('has credentials in it')
      const summary = join(tempDir(), 'termination-log')
      const loader = await runCli(
        ['model', 'pull', 'm@1', '--to', join(tempDir(), 'model.onnx'), ...store, '--log-format', 'json', '--termination-log', summary],
        {},
        project,
      )
      expect(loader.code).to.equal(ExitCode.USAGE)
      for (const output of [everything(list), everything(json), everything(loader), readFileSync(summary, 'utf8')])
        expect(output).to.not.contain('gcs-pa55w0rd')
    })

    for (const [input, secret] of [
      ['user:gcs-pa55w0rd@127.0.0.1:1 (no scheme)', 'user:gcs-pa55w0rd@127.0.0.1:1'],
      ['http://127.0.0.1:1/?key=API-KEY-VALUE (a query)', 'http://127.0.0.1:1/?key=API-KEY-VALUE'],
      ['http://127.0.0.1:1#frag-secret (a fragment)', 'http://127.0.0.1:1#frag-secret'],
    ]) {
      it(`bad input: --gcs-endpoint ${input} → exit 2, one line, the value not echoed`, async () => {
        const run = await runCli(
          ['model', 'list', '--store', 'gs://bucket1', '--gcs-endpoint', secret, '--store-timeout', '1'],
          {},
          project,
        )
        expect(run.code).to.equal(ExitCode.USAGE)
        expect(run.stderr).to.match(/^Error: the GCS endpoint has (credentials in it|a query or fragment)/)
        expect(everything(run)).to.not.contain(secret.replace(/^.*[@?#]/, ''))
      })
    }

    it('secret-looking query parameters in any URL are redacted (key=, access_token=, X-Goog-Signature=), others kept', () => {
      expect(
        redact('GET https://h/o?alt=media&key=AIzaSECRET&X-Goog-Signature=abc123def&prefix=a fails; http://x/?access_token=ya29.tok'),
      ).to.equal('GET https://h/o?alt=media&key=***&X-Goog-Signature=***&prefix=a fails; http://x/?access_token=***')
    })

    it('userinfo in DOCKER_HOST: not in the error', async () => {
      const run = await runCli(['image', 'build'], {DOCKER_HOST: 'tcp://docker-user:docker-pa55@127.0.0.1:1'}, project)
      expect(run.code).to.equal(ExitCode.UNAVAILABLE)
      expect(run.stderr).to.contain('tcp://***@127.0.0.1:1')
      expect(everything(run)).to.not.contain('docker-pa55')
    })

    it('userinfo in a kubeconfig server URL: not in the error', async () => {
      const kubeconfig = join(tempDir(), 'kubeconfig')
      writeFileSync(
        kubeconfig,
        `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: "https://kube-user:kube-pa55@127.0.0.1:1"}\nusers:\n- name: u\n  user: {token: abc}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n`,
      )
      const run = await runCli(['status', '--target', 'k8s'], {KUBECONFIG: kubeconfig}, project)
      expect(run.code).to.equal(ExitCode.UNAVAILABLE)
      expect(everything(run)).to.not.contain('kube-pa55')
    })

    it('a password given as a flag (image push --password X): the usage error does not echo X', async () => {
      const run = await runCli(['image', 'push', '--password', 'flag-hunter2'], {}, project)
      expect(run.code).to.equal(ExitCode.USAGE)
      expect(everything(run)).to.not.contain('flag-hunter2')
    })

    it('a GOOGLE_APPLICATION_CREDENTIALS file that is not JSON: exit 2 naming the file, none of its content', async () => {
      const key = join(tempDir(), 'key.json')
      writeFileSync(key, 'PRIVATE-key-material-not-json\n')
      const run = await runCli(
        ['model', 'list', '--store', 'gs://bucket1', '--store-timeout', '1'],
        {GOOGLE_APPLICATION_CREDENTIALS: key},
        project,
      )
      expect(run.code, run.stderr).to.equal(ExitCode.USAGE)
      expect(run.stderr).to.contain(`Error: GOOGLE_APPLICATION_CREDENTIALS (${key}) is not a JSON key file`)
      expect(everything(run)).to.not.contain('PRIVATE')
    })

    it('a GOOGLE_APPLICATION_CREDENTIALS key whose private key is not PEM: exit 2, not "a bug"', async () => {
      const key = join(tempDir(), 'key.json')
      writeFileSync(
        key,
        JSON.stringify({
          type: 'service_account',
          client_email: 'x@p.iam.gserviceaccount.com',
          private_key: 'not-a-pem-SECRETPART',
          token_uri: 'http://127.0.0.1:1/token',
        }),
      )
      const run = await runCli(
        ['model', 'list', '--store', 'gs://bucket1', '--store-timeout', '1'],
        {GOOGLE_APPLICATION_CREDENTIALS: key},
        project,
      )
      // A key that cannot sign is the user's file: exit 2 naming it, before any token endpoint is asked.
      expect(run.code, run.stderr).to.equal(ExitCode.USAGE)
      expect(run.stderr).to.equal(
        `Error: GOOGLE_APPLICATION_CREDENTIALS (${key}) is not a usable service-account key\n` +
          'Hint: point GOOGLE_APPLICATION_CREDENTIALS at a service-account key (JSON), or run gcloud auth application-default login\n',
      )
      expect(everything(run)).to.not.contain('SECRETPART')
    })
  })
})
