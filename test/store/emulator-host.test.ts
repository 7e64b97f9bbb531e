import {expect} from 'chai'

import {sharedGcs} from '../env/global.js'
import {runCli} from '../helpers/cli.js'
import {fixture, randomBytes} from '../helpers/stores.js'

describe("STORAGE_EMULATOR_HOST, as Google's client libraries read it", () => {
  for (const [what, value] of [
    ['with a scheme', (url: string) => url],
    ['as host:port', (url: string) => url.replace('http://', '')],
  ] as const) {
    it(`alone, ${what}: it is the endpoint (push, then list)`, async () => {
      const gcs = await sharedGcs()
      const bucket = `emu-${randomBytes(4).toString('hex')}`
      await gcs.createBucket(bucket)
      const env = {STORAGE_EMULATOR_HOST: value(gcs.url), MLOPS_STORE: `gs://${bucket}`}
      const push = await runCli(['model', 'push', fixture('iris_svc.onnx'), '--name', 'iris'], env)
      expect(push.code, push.stderr).to.equal(0)
      const list = await runCli(['model', 'list', '--json'], env)
      expect(list.code, list.stderr).to.equal(0)
      expect(JSON.parse(list.stdout).models.map((m: {name: string}) => m.name)).to.deep.equal(['iris'])
    })
  }

  it('set to the very emulator --gcs-endpoint names: push works (the client must not take it as its base URL)', async () => {
    const gcs = await sharedGcs()
    const bucket = `emu-${randomBytes(4).toString('hex')}`
    await gcs.createBucket(bucket)
    const push = await runCli(
      ['model', 'push', fixture('iris_svc.onnx'), '--name', 'iris', '--store', `gs://${bucket}`, '--gcs-endpoint', gcs.url],
      {STORAGE_EMULATOR_HOST: gcs.url},
    )
    expect(push.code, push.stderr).to.equal(0)
    expect(await gcs.listObjects(bucket)).to.include('iris/1/manifest.json')
  })
})
