import {expect} from 'chai'

import {workersForCpuLimit} from '../../src/pod/contract.js'

describe('pod contract: serve workers from the rendered CPU limit', () => {
  for (const [limit, workers] of [
    ['1', 1],
    [2, 2],
    ['1.5', 2],
    ['500m', 1],
    ['2500m', 3],
    ['0.1', 1],
  ] as const) {
    it(`limits.cpu ${JSON.stringify(limit)} → ${workers} worker(s)`, () => {
      expect(workersForCpuLimit(limit)).to.equal(workers)
    })
  }

  for (const limit of [undefined, '', 'abc', '1Gi', '-1']) {
    it(`limits.cpu ${JSON.stringify(limit)} (none, or not a CPU quantity) → one worker, not one per node core`, () => {
      expect(workersForCpuLimit(limit)).to.equal(1)
    })
  }
})
