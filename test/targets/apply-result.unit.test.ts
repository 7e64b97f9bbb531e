import {expect} from 'chai'

import {applyResult} from '../../src/targets/k8s/apply.js'

describe('applyResult: what a deploy reports for each object it applied', () => {
  const pdb = (resourceVersion: string, currentHealthy: number, minAvailable = 1) => ({
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: {name: 'iris', namespace: 'iris', resourceVersion, generation: 1, managedFields: [{manager: 'kube-controller-manager'}]},
    spec: {minAvailable, selector: {matchLabels: {app: 'iris'}}},
    status: {currentHealthy, desiredHealthy: 1, observedGeneration: 1},
  })

  it('no object before → created', () => {
    expect(applyResult(undefined, pdb('1', 0))).to.equal('created')
  })

  it('only the status and resourceVersion moved (the disruption controller counting pods mid-rollout) → unchanged, not configured', () => {
    expect(applyResult(pdb('100', 1), pdb('107', 2))).to.equal('unchanged')
  })

  it('the spec changed → configured', () => {
    expect(applyResult(pdb('100', 1), pdb('101', 1, 2))).to.equal('configured')
  })

  it('a label changed → configured; the same object with its keys in another order → unchanged', () => {
    const labelled = {...pdb('101', 1), metadata: {...pdb('101', 1).metadata, labels: {team: 'ml'}}}
    expect(applyResult(pdb('100', 1), labelled)).to.equal('configured')
    const reordered = {
      status: pdb('100', 1).status,
      spec: pdb('100', 1).spec,
      metadata: pdb('100', 1).metadata,
      kind: 'PodDisruptionBudget',
      apiVersion: 'policy/v1',
    }
    expect(applyResult(pdb('100', 1), reordered)).to.equal('unchanged')
  })
})
