import {expect} from 'chai'

import {rolloutStatus} from '../../src/targets/k8s/rollout-rules.js'
import type {V1Deployment, V1DeploymentCondition} from '../../src/vendor/kubernetes.js'

/**
 * rolloutStatus against kubectl's DeploymentStatusViewer (k8s.io/kubectl
 * pkg/polymorphichelpers/rollout_status.go), rule by rule and in its order:
 * generation observed? ProgressDeadlineExceeded? updated < desired?
 * total > updated (old replicas)? available < updated? done.
 */
function deployment(options: {
  generation?: number
  observedGeneration?: number
  replicas?: number
  status?: {replicas?: number; updatedReplicas?: number; availableReplicas?: number}
  conditions?: V1DeploymentCondition[]
  name?: string
}): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {name: options.name ?? 'iris', namespace: 'ml', generation: options.generation ?? 2},
    spec: {
      ...(options.replicas === undefined ? {} : {replicas: options.replicas}),
      selector: {matchLabels: {'app.kubernetes.io/name': 'iris'}},
      template: {spec: {containers: [{name: 'api', image: 'api:1'}]}},
    },
    status: {observedGeneration: options.observedGeneration ?? 2, conditions: options.conditions, ...options.status},
  }
}

const progressing = (reason: string, status = 'True'): V1DeploymentCondition => ({type: 'Progressing', status, reason})

describe('rolloutStatus: kubectl rollout status rules for a Deployment', () => {
  it('generation > observedGeneration: waits for the spec update to be observed', () => {
    expect(
      rolloutStatus(
        deployment({generation: 3, observedGeneration: 2, replicas: 2, status: {replicas: 2, updatedReplicas: 2, availableReplicas: 2}}),
      ),
    ).to.deep.equal({done: false, message: 'waiting for the deployment spec update to be observed'})
  })

  it('no status at all (just created, generation 1): waits for the spec update to be observed', () => {
    const fresh: V1Deployment = {metadata: {name: 'iris', generation: 1}, spec: {replicas: 2, selector: {}, template: {}}}
    expect(rolloutStatus(fresh)).to.deep.equal({done: false, message: 'waiting for the deployment spec update to be observed'})
  })

  it('an unobserved generation wins over a ProgressDeadlineExceeded left from the previous rollout (kubectl checks the generation first)', () => {
    const result = rolloutStatus(
      deployment({generation: 4, observedGeneration: 3, replicas: 2, conditions: [progressing('ProgressDeadlineExceeded', 'False')]}),
    )
    expect(result).to.deep.equal({done: false, message: 'waiting for the deployment spec update to be observed'})
  })

  it('observedGeneration ahead of generation counts as observed (kubectl: generation <= observedGeneration)', () => {
    expect(
      rolloutStatus(
        deployment({generation: 2, observedGeneration: 5, replicas: 1, status: {replicas: 1, updatedReplicas: 1, availableReplicas: 1}}),
      ),
    ).to.deep.equal({done: true, message: '1/1 available'})
  })

  it('Progressing condition with reason ProgressDeadlineExceeded: failed, naming the deployment', () => {
    const result = rolloutStatus(
      deployment({
        replicas: 2,
        status: {replicas: 3, updatedReplicas: 1, availableReplicas: 2},
        conditions: [
          {type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable'},
          progressing('ProgressDeadlineExceeded', 'False'),
        ],
      }),
    )
    expect(result).to.deep.equal({
      done: false,
      failed: 'deployment iris exceeded its progress deadline',
      message: 'progress deadline exceeded',
    })
  })

  it('ProgressDeadlineExceeded as the reason of another condition type is not a failure', () => {
    const result = rolloutStatus(
      deployment({
        replicas: 1,
        status: {replicas: 1, updatedReplicas: 1, availableReplicas: 1},
        conditions: [{type: 'Available', status: 'False', reason: 'ProgressDeadlineExceeded'}],
      }),
    )
    expect(result).to.deep.equal({done: true, message: '1/1 available'})
  })

  it('a Progressing condition with another reason (ReplicaSetUpdated) is not a failure', () => {
    const result = rolloutStatus(
      deployment({
        replicas: 3,
        status: {replicas: 3, updatedReplicas: 1, availableReplicas: 2},
        conditions: [progressing('ReplicaSetUpdated')],
      }),
    )
    expect(result).to.deep.equal({done: false, message: '1 of 3 new replicas updated'})
  })

  it('updatedReplicas < spec.replicas: counts the new replicas updated', () => {
    expect(rolloutStatus(deployment({replicas: 3, status: {replicas: 4, updatedReplicas: 2, availableReplicas: 3}}))).to.deep.equal({
      done: false,
      message: '2 of 3 new replicas updated',
    })
  })

  it('no updatedReplicas in the status yet: 0 of N updated', () => {
    expect(rolloutStatus(deployment({replicas: 2, status: {replicas: 2, availableReplicas: 2}}))).to.deep.equal({
      done: false,
      message: '0 of 2 new replicas updated',
    })
  })

  it('spec.replicas absent counts as 1 (the API server default), unlike kubectl, which then skips this rule', () => {
    expect(rolloutStatus(deployment({status: {}}))).to.deep.equal({done: false, message: '0 of 1 new replicas updated'})
  })

  it('status.replicas > updatedReplicas: old replicas pending termination', () => {
    expect(rolloutStatus(deployment({replicas: 2, status: {replicas: 5, updatedReplicas: 2, availableReplicas: 2}}))).to.deep.equal({
      done: false,
      message: '3 old replicas pending termination',
    })
  })

  it('availableReplicas < updatedReplicas: counts the updated replicas available', () => {
    expect(rolloutStatus(deployment({replicas: 3, status: {replicas: 3, updatedReplicas: 3, availableReplicas: 1}}))).to.deep.equal({
      done: false,
      message: '1 of 3 updated replicas available',
    })
  })

  it('availability is counted against the updated replicas, not spec.replicas: 2 of 3 updated available is not done', () => {
    expect(rolloutStatus(deployment({replicas: 2, status: {replicas: 3, updatedReplicas: 3, availableReplicas: 2}}))).to.deep.equal({
      done: false,
      message: '2 of 3 updated replicas available',
    })
  })

  it('no availableReplicas in the status: 0 of N available', () => {
    expect(rolloutStatus(deployment({replicas: 2, status: {replicas: 2, updatedReplicas: 2}}))).to.deep.equal({
      done: false,
      message: '0 of 2 updated replicas available',
    })
  })

  it('every replica updated and available, none old: done', () => {
    expect(
      rolloutStatus(
        deployment({
          replicas: 2,
          status: {replicas: 2, updatedReplicas: 2, availableReplicas: 2},
          conditions: [progressing('NewReplicaSetAvailable')],
        }),
      ),
    ).to.deep.equal({done: true, message: '2/2 available'})
  })

  it('surge: more updated than desired, all available, none old: done (kubectl has no updated > desired rule)', () => {
    expect(rolloutStatus(deployment({replicas: 2, status: {replicas: 3, updatedReplicas: 3, availableReplicas: 3}}))).to.deep.equal({
      done: true,
      message: '3/2 available',
    })
  })

  it('scaled to zero: done with 0/0', () => {
    expect(rolloutStatus(deployment({replicas: 0, status: {}}))).to.deep.equal({done: true, message: '0/0 available'})
  })

  it("the rules apply in kubectl's order: updated < desired is reported before old replicas and availability", () => {
    expect(rolloutStatus(deployment({replicas: 4, status: {replicas: 6, updatedReplicas: 1, availableReplicas: 0}})).message).to.equal(
      '1 of 4 new replicas updated',
    )
    expect(rolloutStatus(deployment({replicas: 4, status: {replicas: 6, updatedReplicas: 4, availableReplicas: 0}})).message).to.equal(
      '2 old replicas pending termination',
    )
  })
})
