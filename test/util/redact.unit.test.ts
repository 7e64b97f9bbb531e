import {expect} from 'chai'

import {REDACTED, addSecret, redact, redactJson, registerProcessSecrets} from '../../src/util/redact.js'
import {restoreEnv} from '../helpers/env.js'

// Registered secrets live for the whole process (the full suite runs in one): every value here is unique to this file.
describe('redact: credentials never come back out', () => {
  describe('userinfo in URLs', () => {
    it('user:password in http(s), tcp, ssh and any other scheme, every occurrence', () => {
      expect(redact('GET http://alice:pa55w0rd@127.0.0.1:4443/storage/v1/b failed')).to.equal(
        'GET http://***@127.0.0.1:4443/storage/v1/b failed',
      )
      expect(
        redact('DOCKER_HOST=tcp://u:p@10.0.0.1:2376 and https://bob:hunter2@registry.example.com/v2/ and ssh://git@github.com/o/r'),
      ).to.equal('DOCKER_HOST=tcp://***@10.0.0.1:2376 and https://***@registry.example.com/v2/ and ssh://***@github.com/o/r')
    })

    it('a token as the only userinfo, a password without a user, an upper-case scheme', () => {
      expect(redact('https://ghp_token123@x.example/y')).to.equal('https://***@x.example/y')
      expect(redact('redis://:onlypass@h:6379')).to.equal('redis://***@h:6379')
      expect(redact('HTTPS://U:P@HOST/')).to.equal('HTTPS://***@HOST/')
    })

    it('a URL inside quotes or JSON keeps its quotes', () => {
      expect(redact('url=\'http://u:p@h\' "https://t@k/"')).to.equal('url=\'http://***@h\' "https://***@k/"')
    })
  })

  describe('registered secrets', () => {
    it('addSecret: every occurrence is replaced, special characters taken literally', () => {
      addSecret('unit-s3cr3t-$.*+?(')
      expect(redact('a unit-s3cr3t-$.*+?( b unit-s3cr3t-$.*+?(')).to.equal(`a ${REDACTED} b ${REDACTED}`)
      expect(REDACTED).to.equal('***')
    })

    it('a value shorter than 4 characters is not registered (it would blank out ordinary words)', () => {
      addSecret('u7x')
      addSecret('')
      addSecret(undefined)
      expect(redact('u7x is fine')).to.equal('u7x is fine')
    })

    it('registerProcessSecrets: --password VALUE, --token=VALUE, -secret VALUE, --KEY=VALUE, --api-key VALUE and MLOPS_REGISTRY_PASSWORD', () => {
      const saved = process.env.MLOPS_REGISTRY_PASSWORD
      process.env.MLOPS_REGISTRY_PASSWORD = 'unit-env-registry-pw'
      try {
        registerProcessSecrets([
          'image',
          'push',
          '--password',
          'unit-flag-pw-1',
          '--token=unit-flag-tok-2',
          '-secret',
          'unit-flag-sec-3',
          '--KEY=unit-flag-key-4',
          '--api-key',
          'unit-flag-api-5',
        ])
      } finally {
        restoreEnv('MLOPS_REGISTRY_PASSWORD', saved)
      }

      expect(redact('unit-flag-pw-1 unit-flag-tok-2 unit-flag-sec-3 unit-flag-key-4 unit-flag-api-5 unit-env-registry-pw')).to.equal(
        '*** *** *** *** *** ***',
      )
    })

    it('registerProcessSecrets: the password of USER:PASSWORD@HOST in any argument or MLOPS_* value, with or without a scheme, even when quoted in part', () => {
      const saved = process.env.MLOPS_UNIT_STORE
      process.env.MLOPS_UNIT_STORE = 'env-user:unit-env-pa55@127.0.0.1/bucket'
      try {
        registerProcessSecrets(['model', 'show', 'unit-user:unit-arg-pa55@127.0.0.1:1/r', '--to=u:unit-to-pa55@host.example/repo'])
      } finally {
        restoreEnv('MLOPS_UNIT_STORE', saved)
      }
      expect(redact('invalid model name "unit-user:unit-arg-pa55"')).to.equal(`invalid model name "unit-user:${REDACTED}"`)
      expect(redact('bad repository u:unit-to-pa55@host.example/repo')).to.equal(`bad repository u:${REDACTED}@host.example/repo`)
      expect(redact('store env-user:unit-env-pa55@127.0.0.1/bucket')).to.equal(`store env-user:${REDACTED}@127.0.0.1/bucket`)
    })

    it('registerProcessSecrets: an image digest, a host:port/repo and a model ref are no userinfo', () => {
      registerProcessSecrets(['127.0.0.1:5000/team/iris@sha256:0123456789abcdef', 'iris@prod', 'a:b/c@d'])
      expect(redact('127.0.0.1:5000/team/iris@sha256:0123456789abcdef iris@prod a:b/c@d')).to.equal(
        '127.0.0.1:5000/team/iris@sha256:0123456789abcdef iris@prod a:b/c@d',
      )
    })

    it("registerProcessSecrets: other flags' values, a trailing --password without a value and --passwords are not registered", () => {
      registerProcessSecrets(['--username', 'unit-user-name', '--passwords', 'unit-not-a-flag', '--password'])
      expect(redact('unit-user-name unit-not-a-flag')).to.equal('unit-user-name unit-not-a-flag')
    })

    it('a bearer header and a PEM private key are recognised by their shape, registered or not', () => {
      expect(redact('Authorization: Bearer unit.bearer.tok3n')).to.equal('Authorization: Bearer ***')
      expect(redact('key: -----BEGIN PRIVATE KEY-----\nunitMIIEvQIBADANBgkq\n-----END PRIVATE KEY----- end')).to.equal('key: *** end')
      expect(redact('{"private_key": "-----BEGIN RSA PRIVATE KEY-----\\nMIIEvQ\\n-----END RSA PRIVATE KEY-----\\n"}')).to.equal(
        '{"private_key": "***\\n"}',
      )
      // A key cut off before its END line is still removed, to the end of the text.
      expect(redact('-----BEGIN PRIVATE KEY-----\nunitMIIEvQ')).to.equal('***')
    })

    it('a password with a raw @ in a URL is removed whole (bad input: http://user:p@ss@host)', () => {
      expect(redact('http://user:p@ss@host.example/x')).to.equal('http://***@host.example/x')
    })
  })

  describe('left alone', () => {
    for (const text of [
      'http://127.0.0.1:4443/storage/v1/b?alt=json',
      'cannot reach http://127.0.0.1:1: connect ECONNREFUSED',
      'loader@project.iam.gserviceaccount.com',
      'git@github.com:org/repo.git',
      'mailto:ops@example.com',
      'registry.example.com/iris/api@sha256:0123456789abcdef',
      'deployed iris@3 (alias prod)',
      'use http://HOST:PORT',
      'sha256:' + 'ab'.repeat(32),
    ]) {
      it(JSON.stringify(text), () => {
        expect(redact(text)).to.equal(text)
      })
    }
  })

  describe('redactJson', () => {
    it('redacts every string, keys included, in nested objects and lists; other values are kept as they are', () => {
      addSecret('unit-json-secret')
      const value = {
        error: {message: 'GET https://u:p@h/x: unit-json-secret', code: 7, retry: false, cause: null},
        list: ['unit-json-secret', 1, {'unit-json-secret': 'k'}],
      }
      expect(redactJson(value)).to.deep.equal({
        error: {message: 'GET https://***@h/x: ***', code: 7, retry: false, cause: null},
        list: ['***', 1, {'***': 'k'}],
      })
      expect(value.error.message).to.equal('GET https://u:p@h/x: unit-json-secret')
    })

    it('a plain string, a number and undefined', () => {
      expect(redactJson('http://a:b@c')).to.equal('http://***@c')
      expect(redactJson(42)).to.equal(42)
      expect(redactJson(undefined)).to.equal(undefined)
    })
  })
})
