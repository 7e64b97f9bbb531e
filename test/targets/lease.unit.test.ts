import {expect} from 'chai'
import {spawnSync} from 'node:child_process'

import {ConflictError} from '../../src/errors.js'
import {LEASE_SUFFIX, judgeLease, microTime, parseHolder} from '../../src/targets/k8s/lease.js'

const NOW = Date.parse('2026-12-06T12:00:00.000Z')
const ME = {pid: process.pid, host: 'laptop-1'}

function lease(spec: Record<string, unknown>, labels: Record<string, string> = {'app.kubernetes.io/managed-by': 'mlops'}) {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {name: `iris${LEASE_SUFFIX}`, namespace: 'prod', labels},
    spec: {leaseDurationSeconds: 30, renewTime: microTime(new Date(NOW - 4000)), ...spec},
  }
}

describe('the release lease (one mlops deploy, rollback, abort or delete at a time per deployment)', () => {
  it('microTime has the six fractional digits the API server parses', () => {
    expect(microTime(new Date('2026-12-06T12:00:00.123Z'))).to.equal('2026-12-06T12:00:00.123000Z')
  })

  it('parseHolder reads "mlops deploy pid 4242 on ci-runner-7" and nothing looser', () => {
    expect(parseHolder('mlops deploy pid 4242 on ci-runner-7')).to.deep.equal({command: 'deploy', pid: 4242, host: 'ci-runner-7'})
    for (const bad of [
      'mlops deploy pid 0 on h',
      'mlops deploy pid 42 on \u001B[31mred',
      'mlops deploy pid 42 on h\nError: forged',
      'kubectl pid 42 on h',
      'mlops deploy pid 99999999999 on h',
      42,
      undefined,
    ])
      expect(parseHolder(bad), String(bad)).to.equal(undefined)
  })

  it('a live holder on another host, renewed 4 s ago → exit 4 naming the command, pid, host and deployment', () => {
    const verdict = judgeLease(lease({holderIdentity: 'mlops deploy pid 4242 on ci-runner-7'}), NOW, ME)
    expect(verdict).to.be.instanceOf(ConflictError)
    expect((verdict as ConflictError).message).to.equal(
      'another mlops deploy (pid 4242 on ci-runner-7) is changing prod/iris (lease renewed 4s ago)',
    )
    expect((verdict as ConflictError).suggestion).to.match(/lets go 30s after its last renewal/)
  })

  it('a holder not renewed for longer than its duration (killed on another machine) is stale', () => {
    const old = lease({holderIdentity: 'mlops deploy pid 4242 on ci-runner-7', renewTime: microTime(new Date(NOW - 31_000))})
    expect(judgeLease(old, NOW, ME)).to.equal('stale')
  })

  it('a holder on this host whose pid is gone (kill -9) is stale at once; one whose pid lives is not', () => {
    const gone = spawnSync(process.execPath, ['-e', '0']).pid
    expect(judgeLease(lease({holderIdentity: `mlops deploy pid ${gone} on ${ME.host}`}), NOW, ME)).to.equal('stale')
    expect(judgeLease(lease({holderIdentity: `mlops rollback pid ${process.ppid} on ${ME.host}`}), NOW, ME)).to.be.instanceOf(ConflictError)
  })

  it('hostile or broken leases: a holder that is not ours, a renewTime that is no time, a duration of 0 or a year → stale (the words are never echoed)', () => {
    for (const spec of [
      {holderIdentity: 'mlops deploy pid 1 on h\u001B]0;owned\u0007'},
      {holderIdentity: 'mlops deploy pid 4242 on ci-runner-7', renewTime: 'yesterday'},
      {holderIdentity: 'mlops deploy pid 4242 on ci-runner-7', leaseDurationSeconds: 0},
      {holderIdentity: 'mlops deploy pid 4242 on ci-runner-7', leaseDurationSeconds: 365 * 86_400},
    ])
      expect(judgeLease(lease(spec), NOW, ME), JSON.stringify(spec)).to.equal('stale')
  })

  it('a lease of that name that mlops did not make → exit 4, never taken over', () => {
    const verdict = judgeLease(lease({holderIdentity: 'someone'}, {}), NOW, ME)
    expect(verdict).to.be.instanceOf(ConflictError)
    expect((verdict as ConflictError).message).to.equal(
      `lease prod/iris${LEASE_SUFFIX} exists and was not made by mlops: it cannot tell whether a release is under way`,
    )
  })
})
