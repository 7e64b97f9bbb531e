import {expect} from 'chai'
import {chmodSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {registryCredentials} from '../../src/images/credentials.js'
import {registryOf} from '../../src/images/names.js'
import {rejection} from '../helpers/assert.js'
import {tempDir} from '../helpers/stores.js'
import {restoreEnv} from '../helpers/env.js'

describe('registry credentials, found the way the Docker CLI finds them', () => {
  const saved = {DOCKER_CONFIG: process.env.DOCKER_CONFIG, PATH: process.env.PATH}
  afterEach(() => {
    restoreEnv('DOCKER_CONFIG', saved.DOCKER_CONFIG)
    restoreEnv('PATH', saved.PATH)
  })

  function config(content: object): void {
    const dir = tempDir()
    writeFileSync(join(dir, 'config.json'), JSON.stringify(content))
    process.env.DOCKER_CONFIG = dir
  }

  /** A docker-credential-NAME program on PATH that answers `get` like the real helpers. */
  function helper(name: string, answers: Record<string, {Username: string; Secret: string}>): void {
    const dir = tempDir()
    const script = join(dir, `docker-credential-${name}`)
    writeFileSync(
      script,
      [
        `#!/usr/bin/env node`,
        `let key = '';process.stdin.on('data', c => key += c).on('end', () => {`,
        `  const answers = ${JSON.stringify(answers)};`,
        `  if (!answers[key]) { console.log('credentials not found in native keychain'); process.exit(1) }`,
        `  console.log(JSON.stringify({ServerURL: key, ...answers[key]}))`,
        `})`,
      ].join('\n') + '\n',
    )
    chmodSync(script, 0o755)
    process.env.PATH = `${dir}:${saved.PATH}`
  }

  it('registry host of an image reference', () => {
    expect(registryOf('127.0.0.1:5000/team/api:1')).to.equal('127.0.0.1:5000')
    expect(registryOf('europe-docker.pkg.dev/p/r/api:1')).to.equal('europe-docker.pkg.dev')
    expect(registryOf('localhost/api:1')).to.equal('localhost')
    expect(registryOf('team/api:1')).to.equal('docker.io')
    expect(registryOf('api:1')).to.equal('docker.io')
  })

  it('auths entry (base64 user:password) and identity tokens', async () => {
    config({auths: {'r.example.com': {auth: Buffer.from('me:p:w').toString('base64')}, 'https://t.example.com': {identitytoken: 'tok'}}})
    expect(await registryCredentials('r.example.com', {})).to.deep.equal({serveraddress: 'r.example.com', username: 'me', password: 'p:w'})
    expect(await registryCredentials('t.example.com', {})).to.deep.equal({serveraddress: 't.example.com', identitytoken: 'tok'})
    expect(await registryCredentials('other.example.com', {})).to.equal(undefined)
  })

  it('credHelpers for one registry win over auths; credsStore for the rest', async () => {
    helper('mlopstest', {'r.example.com': {Username: 'helped', Secret: 's1'}, 'gcr.example.com': {Username: '<token>', Secret: 'oauth'}})
    config({
      credHelpers: {'r.example.com': 'mlopstest'},
      auths: {'r.example.com': {auth: Buffer.from('me:pw').toString('base64')}},
      credsStore: 'mlopstest',
    })
    expect(await registryCredentials('r.example.com', {})).to.deep.equal({
      serveraddress: 'r.example.com',
      username: 'helped',
      password: 's1',
    })
    expect(await registryCredentials('gcr.example.com', {})).to.deep.equal({serveraddress: 'gcr.example.com', identitytoken: 'oauth'})
    expect(await registryCredentials('none.example.com', {})).to.equal(undefined)
  })

  it('explicit username and password win; half of them → exit 2; a missing helper → exit 6', async () => {
    config({credsStore: 'does-not-exist'})
    expect(await registryCredentials('r.example.com', {username: 'u', password: 'p'})).to.deep.equal({
      serveraddress: 'r.example.com',
      username: 'u',
      password: 'p',
    })
    expect((await rejection(registryCredentials('r.example.com', {username: 'u'}))).exitCode).to.equal(ExitCode.USAGE)
    const missing = await rejection(registryCredentials('r.example.com', {}))
    expect(missing.exitCode).to.equal(ExitCode.PERMISSION)
    expect(missing.message).to.equal('the credential helper docker-credential-does-not-exist is not installed')
  })

  /** A docker-credential-NAME program that is a shell script of one's own. */
  function rawHelper(name: string, body: string): void {
    const dir = tempDir()
    const script = join(dir, `docker-credential-${name}`)
    writeFileSync(script, `#!/bin/sh\n${body}\n`)
    chmodSync(script, 0o755)
    process.env.PATH = `${dir}:${saved.PATH}`
  }

  it('DOCKER_CONFIG whose config.json is null, an array, or names a helper "../../bin/sh" or a non-string auth → exit 2 naming the file, no helper run', async () => {
    for (const [content, why] of [
      [null, 'expected a JSON object, found null'],
      [[1], 'expected a JSON object, found an array'],
      [{credsStore: '../../bin/sh'}, 'credsStore is not a helper name'],
      [{credHelpers: {'r.example.com': 'x y'}}, 'credHelpers maps a registry to something that is not a helper name'],
      [{credHelpers: null}, 'credHelpers maps a registry to something that is not a helper name'],
      [{auths: {'r.example.com': {auth: 42}}}, 'auths has an entry whose auth or identitytoken is not a string'],
    ] as const) {
      const dir = tempDir()
      writeFileSync(join(dir, 'config.json'), JSON.stringify(content))
      process.env.DOCKER_CONFIG = dir
      const error = await rejection(registryCredentials('r.example.com', {}))
      expect(error.exitCode, JSON.stringify(content)).to.equal(ExitCode.USAGE)
      expect(error.message).to.equal(`${join(dir, 'config.json')} is not a Docker config: ${why}`)
    }
  })

  it('a credential helper that prints non-JSON, JSON without Username/Secret, or exits at once with a message → exit 6, the output never quoted', async () => {
    config({credsStore: 'hostile'})
    for (const [body, message] of [
      [
        'cat >/dev/null; echo "not json SECRETVALUE"',
        'docker-credential-hostile answered something other than {"Username", "Secret"} JSON for r.example.com',
      ],
      [
        'cat >/dev/null; echo \'{"Username": 1, "Secret": "SECRETVALUE"}\'',
        'docker-credential-hostile answered something other than {"Username", "Secret"} JSON for r.example.com',
      ],
      ['echo "keychain locked" >&2; exit 3', 'docker-credential-hostile failed for r.example.com: keychain locked'],
    ]) {
      rawHelper('hostile', body)
      const error = await rejection(registryCredentials('r.example.com', {}))
      expect(error.exitCode, body).to.equal(ExitCode.PERMISSION)
      expect(error.message).to.equal(message)
      expect(error.message).to.not.contain('SECRETVALUE')
    }
  })
})
