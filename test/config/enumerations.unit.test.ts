import {expect} from 'chai'
import {readFileSync} from 'node:fs'

import {PLATFORMS} from '../../src/images/platforms.js'
import {DELIVERIES} from '../../src/pod/contract.js'
import {TARGET_NAMES} from '../../src/targets/target.js'

const schema = JSON.parse(readFileSync(new URL('../../schemas/mlops.schema.json', import.meta.url), 'utf8'))

describe('each enumeration has one home: the schema states it, the code takes it from there', () => {
  const cases: Array<[string, string[], readonly string[]]> = [
    ['deploy.target: TARGETS (src/targets/target.ts)', schema.properties.deploy.properties.target.enum, TARGET_NAMES],
    ['deploy.delivery: DELIVERIES (src/pod/contract.ts)', schema.properties.deploy.properties.delivery.enum, DELIVERIES],
    ['image.platforms: PLATFORMS (src/images/platforms.ts)', schema.properties.image.properties.platforms.items.enum, PLATFORMS],
  ]
  for (const [what, inSchema, inCode] of cases) {
    it(`${what} lists what schemas/mlops.schema.json allows, in its order`, () => {
      expect([...inCode]).to.deep.equal(inSchema)
    })
  }
})
