import {expect} from 'chai'

import {inFlightBudget} from '../../src/serve/limits.js'

describe('in-flight request budget from the memory limit', () => {
  it('a 512Mi container: about 1/40 of what is above 200 MiB', () => {
    expect(inFlightBudget(1 << 20, 512 << 20)).to.equal(Math.floor((312 << 20) / 40))
  })

  it('no limit: 32 MiB', () => {
    expect(inFlightBudget(1 << 20, undefined)).to.equal(32 << 20)
  })

  it('a limit so small that one largest body would not fit: still one body', () => {
    expect(inFlightBudget(1 << 20, 210 << 20)).to.equal(1 << 20)
  })
})
