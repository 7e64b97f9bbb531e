import {expect} from 'chai'
import Docker from 'dockerode'
import {createServer} from 'node:http'
import {join} from 'node:path'

import {engineImageLabels} from '../../src/images/engine-labels.js'
import {dockerEngine} from '../env/docker.js'
import {labelledImage} from '../helpers/docker.js'
import {tempDir} from '../helpers/stores.js'

/** A stand-in engine on a unix socket that answers every request with `status` and `body`. */
async function fakeEngine(status: number, body: string): Promise<{host: string; paths: string[]; close: () => void}> {
  const socket = join(tempDir(), 'docker.sock')
  const paths: string[] = []
  const server = createServer((request, response) => {
    paths.push(request.url!)
    response.writeHead(status, {'content-type': 'application/json'}).end(body)
  }).listen(socket)
  await new Promise(resolve => server.once('listening', resolve))
  return {host: `unix://${socket}`, paths, close: () => server.close()}
}

describe("the compatibility guard's one-request label lookup (engine-labels.ts)", () => {
  it('a real engine: the labels of an image it has; null for one it does not', async () => {
    const {dockerHost} = dockerEngine()
    await labelledImage(new Docker({socketPath: dockerHost.replace(/^unix:\/\//, '')}), 'mlops-test/labelled:1', {
      'io.mlops.component': 'api',
      'io.mlops.onnxruntime.version': '1.30.0',
    })
    expect(await engineImageLabels('mlops-test/labelled:1', dockerHost)).to.include({'io.mlops.onnxruntime.version': '1.30.0'})
    expect(await engineImageLabels('mlops-test/no-such-image:1', dockerHost)).to.equal(null)
  })

  it('asks for the image by its escaped name, nothing else', async () => {
    const engine = await fakeEngine(200, JSON.stringify({Config: {Labels: {a: 'b'}}}))
    try {
      expect(await engineImageLabels('127.0.0.1:5000/team/api:v1', engine.host)).to.deep.equal({a: 'b'})
      expect(engine.paths).to.deep.equal(['/images/127.0.0.1%3A5000%2Fteam%2Fapi%3Av1/json'])
    } finally {
      engine.close()
    }
  })

  for (const [what, status, body] of [
    ['labels that are not strings', 200, JSON.stringify({Config: {Labels: {'io.mlops.onnxruntime.version': {$gt: ''}}}})],
    ['an answer that is not JSON', 200, '<html>'],
    ['a server error', 500, '{"message":"boom"}'],
  ] as const)
    it(`bad input from the engine: ${what} → null (the guard falls back to the packed runtime), no throw`, async () => {
      const engine = await fakeEngine(status, body)
      try {
        expect(await engineImageLabels('api:v1', engine.host)).to.equal(null)
      } finally {
        engine.close()
      }
    })

  it('an engine that is not there → null; ssh:// and TLS engines → undefined (dockerode asks instead)', async () => {
    expect(await engineImageLabels('api:v1', `unix://${join(tempDir(), 'none.sock')}`)).to.equal(null)
    expect(await engineImageLabels('api:v1', 'ssh://user@127.0.0.1')).to.equal(undefined)
    const saved = process.env.DOCKER_TLS_VERIFY
    process.env.DOCKER_TLS_VERIFY = '1'
    try {
      expect(await engineImageLabels('api:v1', 'tcp://127.0.0.1:2376')).to.equal(undefined)
    } finally {
      if (saved === undefined) delete process.env.DOCKER_TLS_VERIFY
      else process.env.DOCKER_TLS_VERIFY = saved
    }
  })
})
