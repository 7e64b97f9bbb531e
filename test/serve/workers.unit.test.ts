import {expect} from 'chai'

import {defaultWorkerCount, inFlightBudget, parseCpuQuota} from '../../src/serve/limits.js'
import {sumCounters} from '../../src/serve/metrics.js'

const MiB = 1 << 20

describe('serve workers: how many, and the pod metrics they sum to', () => {
  describe('parseCpuQuota (cgroup v2 cpu.max, else v1 cfs quota / period)', () => {
    it('v2 "200000 100000" is 2 CPUs; "150000 100000" is 1.5; "50000 50000\\n" is 1', () => {
      expect(parseCpuQuota({cpuMax: '200000 100000'})).to.equal(2)
      expect(parseCpuQuota({cpuMax: '150000 100000'})).to.equal(1.5)
      expect(parseCpuQuota({cpuMax: '50000 50000\n'})).to.equal(1)
    })

    it('v2 "max 100000" is no quota, and v1 files are not read then', () => {
      expect(parseCpuQuota({cpuMax: 'max 100000', cfsQuotaUs: '200000', cfsPeriodUs: '100000'})).to.equal(undefined)
    })

    it('v1 quota 300000 over period 100000 is 3 CPUs; quota -1 is no quota', () => {
      expect(parseCpuQuota({cfsQuotaUs: '300000\n', cfsPeriodUs: '100000\n'})).to.equal(3)
      expect(parseCpuQuota({cfsQuotaUs: '-1', cfsPeriodUs: '100000'})).to.equal(undefined)
    })

    it('no cgroup files at all: no quota', () => {
      expect(parseCpuQuota({})).to.equal(undefined)
    })

    for (const [name, files] of [
      ['v2 text "abc"', {cpuMax: 'abc'}],
      ['v2 empty file', {cpuMax: ''}],
      ['v2 period 0', {cpuMax: '100000 0'}],
      ['v2 quota 0', {cpuMax: '0 100000'}],
      ['v1 quota "abc"', {cfsQuotaUs: 'abc', cfsPeriodUs: '100000'}],
      ['v1 period "abc"', {cfsQuotaUs: '100000', cfsPeriodUs: 'abc'}],
    ] as const) {
      it(`bad input: ${name} is no quota, not NaN or Infinity workers`, () => {
        expect(parseCpuQuota(files)).to.equal(undefined)
      })
    }
  })

  describe('defaultWorkerCount', () => {
    it('the quota rounded up: 1.5 CPUs → 2, 0.1 CPU → 1', () => {
      expect(defaultWorkerCount({cpuQuota: 1.5, cores: 8, modelBytes: 0})).to.equal(2)
      expect(defaultWorkerCount({cpuQuota: 0.1, cores: 8, modelBytes: 0})).to.equal(1)
    })

    it('no quota: the cores; a quota above the cores: the cores', () => {
      expect(defaultWorkerCount({cores: 6, modelBytes: 0})).to.equal(6)
      expect(defaultWorkerCount({cpuQuota: 16, cores: 4, modelBytes: 0})).to.equal(4)
    })

    it('no more than the memory limit holds at 2 × model + 200 MiB each, and at least 1', () => {
      // 1 GiB over (200 + 2 × 100) MiB: 2 workers, though 8 CPUs.
      expect(defaultWorkerCount({cpuQuota: 8, cores: 8, memoryLimit: 1024 * MiB, modelBytes: 100 * MiB})).to.equal(2)
      // The chart's 256Mi limit with no CPU limit on a large node: one worker, not 32.
      expect(defaultWorkerCount({cores: 32, memoryLimit: 256 * MiB, modelBytes: 1000})).to.equal(1)
      expect(defaultWorkerCount({cores: 32, memoryLimit: 64 * MiB, modelBytes: 500 * MiB})).to.equal(1)
    })
  })

  describe('inFlightBudget with workers: the memory limit shared', () => {
    it('2 workers under 1 GiB: (512 MiB - 200 MiB) / 40 each', () => {
      expect(inFlightBudget(MiB, 1024 * MiB, 2)).to.equal(Math.floor((312 * MiB) / 40))
    })
  })

  describe('sumCounters (the pod metrics /metrics answers)', () => {
    const histogram = (counts: number[], sum: number, count: number) => ({
      counts: [...counts, ...Array(13 - counts.length).fill(count)],
      sum,
      count,
    })
    const a = {
      ready: true,
      requests: [['route="/predict",method="POST",status="200"', 3] as [string, number]],
      latency: [['route="/predict"', histogram([1, 2], 0.5, 3)] as [string, ReturnType<typeof histogram>]],
    }
    const b = {
      ready: true,
      requests: [
        ['route="/predict",method="POST",status="200"', 4] as [string, number],
        ['route="/metrics",method="GET",status="200"', 1] as [string, number],
      ],
      latency: [['route="/predict"', histogram([0, 4], 0.25, 4)] as [string, ReturnType<typeof histogram>]],
    }

    it('counters by key and histograms bucket by bucket', () => {
      const sum = sumCounters([a, b])
      expect(sum.requests).to.deep.equal([
        ['route="/predict",method="POST",status="200"', 7],
        ['route="/metrics",method="GET",status="200"', 1],
      ])
      expect(sum.latency).to.have.length(1)
      expect(sum.latency[0][1].counts.slice(0, 3)).to.deep.equal([1, 6, 7])
      expect(sum.latency[0][1].sum).to.equal(0.75)
      expect(sum.latency[0][1].count).to.equal(7)
      expect(sum.ready).to.equal(true)
    })

    it('ready only when every worker is (one still loading: 0)', () => {
      expect(sumCounters([a, {...b, ready: false}]).ready).to.equal(false)
      expect(sumCounters([]).ready).to.equal(false)
    })
  })
})
