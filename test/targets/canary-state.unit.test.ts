import {expect} from 'chai'

import {IntegrityError} from '../../src/errors.js'
import {refusal} from '../helpers/assert.js'
import {type PausedCanary, parsePausedCanary, projectValuesFile, templateHash} from '../../src/targets/k8s/canary-state.js'

const GOOD: PausedCanary = {
  model: 'iris@rf',
  template: 'a'.repeat(64),
  pausedAt: 30,
  remaining: [60, 100],
  intervalMs: 3000,
  gates: {minAgreement: 0.9, maxErrorRateIncrease: 0.01, maxP99Ratio: 3},
  pause: true,
  request: {
    set: ['autoscaling=false'],
    values: ['values/prod.yaml'],
    image: {repository: 'registry.example.com/team/iris'},
    port: 8000,
    store: {store: 'gs://models'},
  },
}

const refused = (text: string): string => refusal(() => parsePausedCanary(text, 'deployment ml/iris-canary'), IntegrityError)

describe("a paused canary's record (deploy --pause → mlops promote), read back as hostile input", () => {
  it('reads back what deploy wrote', () => {
    expect(parsePausedCanary(JSON.stringify(GOOD), 'deployment ml/iris-canary')).to.deep.equal(GOOD)
  })

  const change = (patch: (record: any) => void) => {
    const record = structuredClone(GOOD) as any
    patch(record)
    return JSON.stringify(record)
  }

  for (const [name, text, field] of [
    ['not JSON', '{"model": ', 'not JSON'],
    ['an array', '[]', 'the record'],
    ['an unknown field', change(r => (r.command = 'rm -rf /')), 'the record: unknown field'],
    ['a model ref that is an alias form without a version', change(r => (r.model = 'iris')), 'model'],
    ['a model with a path in it', change(r => (r.model = '../iris@1')), 'model'],
    ['a template that is not a sha256', change(r => (r.template = 'abc')), 'template'],
    ['pausedAt 100', change(r => (r.pausedAt = 100)), 'pausedAt'],
    ['remaining steps that go down', change(r => (r.remaining = [60, 40, 100])), 'remaining'],
    ['remaining steps at or below the pause', change(r => (r.remaining = [30, 100])), 'remaining'],
    ['remaining without the promotion', change(r => (r.remaining = [60])), 'remaining'],
    ['remaining of strings', change(r => (r.remaining = ['60', 100])), 'remaining'],
    ['an interval of 0', change(r => (r.intervalMs = 0)), 'intervalMs'],
    ['minAgreement 2', change(r => (r.gates.minAgreement = 2)), 'gates.minAgreement'],
    ['a gate of another name', change(r => (r.gates.skip = true)), 'gates: unknown field'],
    ['--set that is not a list of strings', change(r => (r.request.set = [{a: 1}])), 'request.set'],
    ['a delivery mlops does not know', change(r => (r.request.delivery = 'curl')), 'request.delivery'],
    ['port 70000', change(r => (r.request.port = 70_000)), 'request.port'],
    ['a store field of another name', change(r => (r.request.store.key = 's3cret-key')), 'request.store: unknown field'],
    ['anonymous false (only true is a flag)', change(r => (r.request.store.anonymous = false)), 'request.store.anonymous'],
  ] as const)
    it(`refuses a record with ${name}: exit 5 naming "${field}", quoting nothing of it`, () => {
      const message = refused(text)
      expect(message).to.equal(`the paused canary's record on deployment ml/iris-canary is not one mlops wrote (${field})`)
      expect(message).to.not.include('s3cret').and.not.include('rm -rf')
    })

  it('takes a values file inside the project; refuses one outside it (../, absolute), so that a record cannot make promote read another file', () => {
    expect(projectValuesFile('/work/project', 'values/prod.yaml', 'here')).to.equal('/work/project/values/prod.yaml')
    for (const file of ['../secrets.yaml', '/etc/passwd', 'values/../../x.yaml', '.'])
      expect(() => projectValuesFile('/work/project', file, 'here')).to.throw(IntegrityError, /names a values file outside the project/)
  })

  it("hashes the canary's pod template: the same rendering, the same hash; any change, another", () => {
    const canary = (image: string) => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {name: 'c'},
      spec: {replicas: 1, template: {spec: {containers: [{image}]}}},
    })
    expect(templateHash(canary('api:1'))).to.match(/^[0-9a-f]{64}$/)
    expect(templateHash(canary('api:1'))).to.equal(templateHash({...canary('api:1'), spec: {...canary('api:1').spec, replicas: 5}}))
    expect(templateHash(canary('api:1'))).to.not.equal(templateHash(canary('api:2')))
  })
})
