import type {V1Pod} from '@kubernetes/client-node'
import {expect} from 'chai'

import {refusal} from '../helpers/assert.js'
import type {KubernetesObject} from '../../src/manifests/render.js'
import {canaryPlan, deployPlan} from '../../src/targets/canary-plan.js'
import {intervalCounters, judge, parseCounters} from '../../src/targets/k8s/canary.js'
import {candidateUrls, judgeShadow, shadowCandidate, shadowReading, shadowReplicas} from '../../src/targets/k8s/shadow.js'

const GATES = {minAgreement: 0.99, maxErrorRateIncrease: 0.01, maxP99Ratio: 3}

describe('the progressive-delivery plan (flags over deploy.canary over the defaults)', () => {
  it('none without --canary, --steps or --shadow', () => {
    expect(canaryPlan(undefined, {})).to.equal(undefined)
    expect(canaryPlan({steps: [20], shadow: true}, {})).to.equal(undefined)
  })

  it('--canary: steps 10, 50 then 100, a 30 s interval and the default gates; no shadow', () => {
    expect(canaryPlan(undefined, {canary: true})).to.deep.equal({steps: [10, 50, 100], intervalMs: 30_000, gates: GATES})
  })

  it('--shadow alone: a shadow phase of 0.1, then the promotion (no steps)', () => {
    expect(canaryPlan(undefined, {shadow: true})).to.deep.include({shadow: {sample: 0.1}, steps: [100]})
    expect(canaryPlan(undefined, {'shadow-sample': '0.5'})).to.deep.include({shadow: {sample: 0.5}, steps: [100]})
  })

  it('--canary with deploy.canary.shadow: the shadow first, at deploy.canary.shadowSample, then the steps', () => {
    expect(canaryPlan({shadow: true, shadowSample: 0.25, steps: [30]}, {canary: true})).to.deep.include({
      shadow: {sample: 0.25},
      steps: [30, 100],
    })
  })

  for (const [name, flags, message] of [
    ['--shadow-sample 0', {shadow: true, 'shadow-sample': '0'}, /^--shadow-sample 0 mirrors nothing$/],
    ['--shadow-sample 2', {shadow: true, 'shadow-sample': '2'}, /^--shadow-sample "2" is not a number from 0 to 1$/],
    ['--shadow-sample abc', {shadow: true, 'shadow-sample': 'abc'}, /^--shadow-sample "abc" is not a number/],
    [
      '--interval without --canary or --shadow',
      {interval: 5000},
      /^--interval is a progressive-delivery setting: it needs --canary or --shadow$/,
    ],
    ['--min-agreement without --canary or --shadow', {'min-agreement': '0.9'}, /^--min-agreement is a progressive-delivery setting/],
    ['--steps 50,50', {steps: '50,50'}, /steps must go up/],
  ] as const)
    it(`refuses ${name}`, () => {
      expect(refusal(() => canaryPlan(undefined, flags))).to.match(message)
    })
})

describe('deploy.strategy in mlops.yaml: the plan of a plain deploy', () => {
  const K8S = {target: 'k8s', preview: false}

  it('canary: a plain deploy to k8s runs the canary with deploy.canary, marked as from the config', () => {
    expect(deployPlan({strategy: 'canary', canary: {steps: [25]}}, {}, K8S)).to.deep.equal({
      steps: [25, 100],
      intervalMs: 30_000,
      gates: GATES,
      fromConfig: true,
    })
  })

  it('shadow: a shadow phase, then the promotion; the gate flags apply to it (--interval 5s)', () => {
    expect(deployPlan({strategy: 'shadow'}, {interval: 5000}, K8S)).to.deep.include({
      shadow: {sample: 0.1},
      steps: [100],
      intervalMs: 5000,
      fromConfig: true,
    })
  })

  it('all at once: the default, --all-at-once, the local and docker targets, --dry-run and --diff', () => {
    expect(deployPlan(undefined, {}, K8S)).to.equal(undefined)
    expect(deployPlan({strategy: 'all-at-once', canary: {steps: [20]}}, {}, K8S)).to.equal(undefined)
    expect(deployPlan({strategy: 'canary'}, {'all-at-once': true}, K8S)).to.equal(undefined)
    for (const target of ['local', 'docker']) expect(deployPlan({strategy: 'canary'}, {}, {target, preview: false})).to.equal(undefined)
    expect(deployPlan({strategy: 'shadow'}, {}, {target: 'k8s', preview: true})).to.equal(undefined)
  })

  it('flags win over the strategy: --shadow with strategy canary is a shadow alone, not marked as from the config', () => {
    expect(deployPlan({strategy: 'canary'}, {shadow: true}, K8S)).to.deep.equal(canaryPlan(undefined, {shadow: true}))
  })

  it('refuses --all-at-once --interval 5s (a gate with nothing to gate)', () => {
    expect(refusal(() => deployPlan({strategy: 'canary'}, {'all-at-once': true, interval: 5000}, K8S))).to.match(
      /^--interval is a progressive-delivery setting: it needs --canary or --shadow$/,
    )
  })
})

describe('deploy --shadow: the candidate, its addresses and its readings', () => {
  const release: KubernetesObject[] = [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {name: 'iris', namespace: 'ml', labels: {'app.kubernetes.io/name': 'iris', 'mlops.io/model': 'iris'}},
      spec: {
        replicas: 4,
        selector: {matchLabels: {'app.kubernetes.io/name': 'iris'}},
        template: {
          metadata: {labels: {'app.kubernetes.io/name': 'iris'}},
          spec: {
            containers: [
              {
                name: 'api',
                env: [
                  {name: 'MODEL_FILEPATH', value: '/workdir/model.onnx'},
                  {name: 'MLOPS_SHADOW_CONFIG', value: '/etc/mlops/shadow/shadow.json'},
                ],
              },
            ],
          },
        },
      },
    },
  ]

  it('is the release under another app name (no Service or PDB selects it), on the shadow track, and never mirrors itself', () => {
    const candidate = shadowCandidate(release, 2) as unknown as {metadata: {name: string}; spec: Record<string, any>}
    expect(candidate.metadata.name).to.equal('iris-shadow')
    expect(candidate.spec.replicas).to.equal(2)
    expect(candidate.spec.selector.matchLabels).to.deep.equal({'app.kubernetes.io/name': 'iris-shadow', 'mlops.io/track': 'shadow'})
    expect(candidate.spec.template.metadata.labels).to.deep.equal(candidate.spec.selector.matchLabels)
    expect(candidate.spec.template.spec.containers[0].env).to.deep.equal([{name: 'MODEL_FILEPATH', value: '/workdir/model.onnx'}])
    // The release itself is untouched.
    expect((release[0].spec as any).template.spec.containers[0].env).to.have.length(2)
  })

  it('has pods for its share of the stable, at least one', () => {
    expect([shadowReplicas(0.1, 1), shadowReplicas(0.1, 10), shadowReplicas(0.25, 10), shadowReplicas(1, 3)]).to.deep.equal([1, 1, 3, 3])
  })

  const pod = (ip: string | undefined, ready = true, port: number = 8000): V1Pod => ({
    spec: {containers: [{name: 'api', ports: [{name: 'http', containerPort: port}]}]},
    status: {podIP: ip, conditions: [{type: 'Ready', status: ready ? 'True' : 'False'}]},
  })
  it('is reached at its ready pods: IPv4 and IPv6 addresses; an unready pod, no address, a hostname or a bad port are left out', () => {
    expect(
      candidateUrls([
        pod('10.0.0.9'),
        pod('fd00::7'),
        pod('10.0.0.8', false),
        pod(undefined),
        pod('evil.example.com'),
        pod('10.0.0.1/../x'),
        pod('10.0.0.3', true, 70_000),
      ]),
    ).to.deep.equal(['http://10.0.0.9:8000', 'http://[fd00::7]:8000'])
  })

  it('reads the mirrored results over the interval: agreement among those compared, failures among those sent', () => {
    expect(
      shadowReading(
        new Map([
          ['agree', 30],
          ['error', 2],
          ['timeout', 1],
        ]),
      ),
    ).to.deep.equal({
      agree: 30,
      disagree: 0,
      error: 2,
      timeout: 1,
      dropped: 0,
      agreement: 1,
      failureRate: 3 / 33,
    })
    expect(shadowReading(new Map())).to.include({agreement: null, failureRate: null})
  })

  const phase = (reading: Partial<ReturnType<typeof shadowReading>>, referenceAgreement: number | null = 1) => ({
    deployment: 'iris-shadow',
    replicas: 1,
    sample: 0.1,
    mirroringPods: 1,
    stablePods: 1,
    referenceAgreement,
    reading: {agree: 0, disagree: 0, error: 0, timeout: 0, dropped: 0, agreement: null, failureRate: null, ...reading},
  })
  it('passes on agreement and no failures; nothing mirrored (no traffic) is judged on the reference set alone', () => {
    expect(judgeShadow(phase({agree: 50, agreement: 1, failureRate: 0}), 0, GATES).failed).to.deep.equal([])
    expect(judgeShadow(phase({}), 0, GATES).failed).to.deep.equal([])
    expect(judgeShadow(phase({}, 0.9), 0, GATES).failed).to.deep.equal(['agreement with the stable on the reference set 0.9 < 0.99'])
  })

  it('fails on live disagreement, and on errors and timeouts beyond the stable’s own error rate', () => {
    expect(judgeShadow(phase({agree: 45, disagree: 5, agreement: 0.9, failureRate: 0}), 0, GATES).failed).to.deep.equal([
      'agreement with the stable on mirrored requests 0.9 (45 of 50) < 0.99',
    ])
    const failing = judgeShadow(phase({agree: 90, error: 8, timeout: 2, agreement: 1, failureRate: 0.1}), 0.02, GATES).failed
    expect(failing).to.have.length(1)
    expect(failing[0]).to.match(/^8 errors and 2 timeouts of 100 mirrored requests \(0\.1\): more than 0\.01 above the stable's 0\.02$/)
  })
})

describe('the tracks’ counters, read from /metrics', () => {
  it('reads prediction requests, 5xx, latency buckets and the shadow’s results and workers; probes and unknown results are not counted', () => {
    const counters = parseCounters(
      [
        'mlops_http_requests_total{route="/predict/label",method="POST",status="200"} 10',
        'mlops_http_requests_total{route="/predict",method="POST",status="500"} 2',
        'mlops_http_requests_total{route="/ready",method="GET",status="200"} 99',
        'mlops_http_request_duration_seconds_bucket{route="/predict/label",le="0.01"} 7',
        'mlops_http_request_duration_seconds_bucket{route="/predict/label",le="+Inf"} 10',
        'mlops_shadow_requests_total{result="agree"} 4',
        'mlops_shadow_requests_total{result="teapot"} 4',
        'mlops_shadow_workers{state="on"} 2',
        'mlops_shadow_workers{state="off"} 0',
        'mlops_shadow_workers{state="maybe"} 5',
        'mlops_shadow_requests_total{result="error"} -3',
      ].join('\n'),
    )
    expect(counters.requests).to.equal(12)
    expect(counters.errors).to.equal(2)
    expect([...counters.buckets]).to.deep.equal([
      [0.01, 7],
      [Number.POSITIVE_INFINITY, 10],
    ])
    expect([...counters.shadow]).to.deep.equal([['agree', 4]])
    expect(counters.shadowWorkers).to.deep.equal({on: 2, off: 0})
  })

  const counters = (requests: number, errors: number, agree = 0) => ({
    requests,
    errors,
    buckets: new Map([[Number.POSITIVE_INFINITY, requests]]),
    shadow: new Map([['agree', agree]]),
    shadowWorkers: {on: 1, off: 0},
  })
  it('over an interval, pod by pod: a pod in both counts its difference, a restarted one from zero, a new one all it has, one that went nothing', () => {
    const before = new Map([
      ['a', counters(100, 1, 10)],
      ['b', counters(500, 5)],
      ['gone', counters(900, 9)],
    ])
    const after = new Map([
      ['a', counters(130, 2, 14)],
      ['b', counters(20, 0)],
      ['new', counters(7, 1)],
    ])
    const interval = intervalCounters(before, after)
    expect([
      interval.requests,
      interval.errors,
      interval.buckets.get(Number.POSITIVE_INFINITY),
      interval.shadow.get('agree'),
    ]).to.deep.equal([30 + 20 + 7, 1 + 0 + 1, 57, 4])
  })

  it('a step judged: the error-rate gate names both rates', () => {
    const track = (requests: number, errors: number) => ({pods: 1, requests, errors, errorRate: errors / requests, p99: 0.01})
    const step = judge(10, {canary: 1, stable: 4}, track(20, 4), track(80, 0), 1, GATES)
    expect(step.failed).to.deep.equal(["error rate 0.2 (4 of 20) against the stable's 0: more than 0.01 above"])
    expect(step.measuredShare).to.equal(0.2)
  })

  it('a step judged: a canary with fewer pods serving at the end than it was given (crashed or removed: no traffic, so no error) fails', () => {
    const track = (pods: number, requests: number) => ({pods, requests, errors: 0, errorRate: requests > 0 ? 0 : null, p99: null})
    expect(judge(50, {canary: 2, stable: 2}, track(0, 0), track(2, 0), null, GATES).failed).to.deep.equal([
      '0 of 2 canary pods serving at the end of the step (crashed, restarting or removed)',
    ])
    expect(judge(50, {canary: 2, stable: 2}, track(1, 40), track(2, 80), null, GATES).failed).to.have.length(1)
    expect(judge(50, {canary: 2, stable: 2}, track(2, 0), track(2, 0), null, GATES).failed).to.deep.equal([])
  })
})
