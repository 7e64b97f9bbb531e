import {expect} from 'chai'

import {parseConfig, validateDeployValues} from '../../src/config/load.js'
import {ConfigError} from '../../src/errors.js'

function configError(run: () => unknown): ConfigError {
  try {
    run()
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError)
    return error as ConfigError
  }

  throw new Error('no error thrown')
}

const ALLOWED_DEPLOY_KEYS =
  'name, namespace, replicas, port, resources, autoscaling, pdb, gcs, target, imagePullSecrets, nodeSelector, tolerations, progressDeadlineSeconds, delivery, modelImage, strategy, canary'
const SEE_README = 'see the deploy keys in docs/configuration.md'

describe('validateDeployValues: the merged deploy values, before anything is rendered', () => {
  it('accepts an empty section, a full one, autoscaling: false and a percentage pdb', () => {
    validateDeployValues({}, '--set')
    validateDeployValues(
      {
        name: 'iris',
        namespace: 'ml',
        replicas: 3,
        port: 8080,
        target: 'k8s',
        resources: {requests: {cpu: '500m', memory: '1Gi'}, limits: {cpu: 2, memory: '2Gi'}},
        autoscaling: {minReplicas: 2, maxReplicas: 2, targetCPUUtilization: 80},
        pdb: {minAvailable: '50%'},
        gcs: {secretName: 'gcs-key'},
        imagePullSecrets: ['regcred'],
        nodeSelector: {pool: 'cpu'},
        tolerations: [{key: 'dedicated', operator: 'Equal', value: 'ml', effect: 'NoSchedule'}],
        progressDeadlineSeconds: 300,
      },
      '--set',
    )
    validateDeployValues({autoscaling: false}, '--set')
  })

  it('bad input replicas=abc: expected integer, naming where the values came from', () => {
    const error = configError(() => validateDeployValues({replicas: 'abc'}, 'deploy values (mlops.yaml, then -f files, then --set)'))
    expect(error.message).to.equal(
      'deploy values (mlops.yaml, then -f files, then --set): deploy.replicas: expected integer, got string "abc"',
    )
    expect(error.suggestion).to.equal(SEE_README)
    expect(error.exitCode).to.equal(2)
  })

  it('bad input replicas=-1 and port=70000: out of range', () => {
    expect(configError(() => validateDeployValues({replicas: -1}, '--set')).message).to.equal('--set: deploy.replicas: must be >= 0')
    expect(configError(() => validateDeployValues({port: 70_000}, '--set')).message).to.equal('--set: deploy.port: must be <= 65535')
  })

  it('bad input "replica" (a typo): unknown key, with the closest key suggested', () => {
    const error = configError(() => validateDeployValues({replica: 2}, '--set'))
    expect(error.message).to.equal('--set: unknown key "replica" in deploy')
    expect(error.suggestion).to.equal(`did you mean "replicas"? Allowed keys: ${ALLOWED_DEPLOY_KEYS}`)
  })

  it('bad input "" (from --set a..b=1 or deploy.=1): unknown key "", no suggestion but the allowed keys', () => {
    const error = configError(() => validateDeployValues({'': 3}, '--set'))
    expect(error.message).to.equal('--set: unknown key "" in deploy')
    expect(error.suggestion).to.equal(`allowed keys: ${ALLOWED_DEPLOY_KEYS}`)
  })

  it('bad input cpu=lots, namespace=Bad_NS, imagePullSecrets=[UPPER]: the expected form in words', () => {
    expect(configError(() => validateDeployValues({resources: {limits: {cpu: 'lots'}}}, '--set')).message).to.equal(
      '--set: deploy.resources.limits.cpu: string "lots" is not a Kubernetes quantity such as 500m, 2 or 1Gi',
    )
    expect(configError(() => validateDeployValues({namespace: 'Bad_NS'}, '--set')).message).to.equal(
      '--set: deploy.namespace: string "Bad_NS" is not a Kubernetes name (lower-case letters, digits and -, up to 63)',
    )
    expect(configError(() => validateDeployValues({imagePullSecrets: ['UPPER']}, '--set')).message).to.equal(
      '--set: deploy.imagePullSecrets.0: string "UPPER" is not a Secret name (lower-case letters, digits, - and .)',
    )
  })

  it('bad input: a deploy section that is a string or null', () => {
    expect(configError(() => validateDeployValues('x', '--set')).message).to.equal('--set: deploy: expected object, got string "x"')
    expect(configError(() => validateDeployValues(null, '--set')).message).to.equal('--set: deploy: expected object, got null')
  })

  it('bad input autoscaling min 5 > max 2: a rule the schema cannot state', () => {
    const error = configError(() => validateDeployValues({autoscaling: {minReplicas: 5, maxReplicas: 2}}, 'values.yaml'))
    expect(error.message).to.equal('values.yaml: deploy.autoscaling.minReplicas (5) is above maxReplicas (2)')
    expect(error.suggestion).to.equal(undefined)
  })

  it('bad input autoscaling min 3 > max 2 (by one) is refused; min = max is fine', () => {
    expect(configError(() => validateDeployValues({autoscaling: {minReplicas: 3, maxReplicas: 2}}, '--set')).message).to.equal(
      '--set: deploy.autoscaling.minReplicas (3) is above maxReplicas (2)',
    )
    validateDeployValues({autoscaling: {minReplicas: 3, maxReplicas: 3}}, '--set')
  })
})

describe('parseConfig: mlops.yaml text', () => {
  it('valid YAML comes back as values; an empty file or only a comment is {}', () => {
    expect(parseConfig('name: iris\ndeploy:\n  replicas: 3\n', 'mlops.yaml')).to.deep.equal({name: 'iris', deploy: {replicas: 3}})
    expect(parseConfig('', 'mlops.yaml')).to.deep.equal({})
    expect(parseConfig('# nothing yet\n', 'mlops.yaml')).to.deep.equal({})
  })

  it('bad input: invalid YAML and duplicate keys, with file:line:col', () => {
    expect(configError(() => parseConfig('name: a\nname: b\n', '/p/mlops.yaml')).message).to.equal(
      '/p/mlops.yaml:2:1: invalid YAML: Map keys must be unique',
    )
    expect(configError(() => parseConfig('name: [\n', 'mlops.yaml')).message).to.match(/^mlops\.yaml:2:1: invalid YAML: \S/)
  })

  it('bad input "nmae": unknown key at the line and column of the key, with "did you mean"', () => {
    const error = configError(() => parseConfig('# project\nnmae: iris\n', 'mlops.yaml'))
    expect(error.message).to.equal('mlops.yaml:2:1: unknown key "nmae"')
    expect(error.suggestion).to.equal('did you mean "name"? Allowed keys: name, model, store, image, deploy')
  })

  it('bad input: a value of the wrong form at the line and column of the value', () => {
    expect(configError(() => parseConfig('deploy:\n  resources:\n    limits:\n      cpu: lots\n', 'mlops.yaml')).message).to.equal(
      'mlops.yaml:4:12: deploy.resources.limits.cpu: string "lots" is not a Kubernetes quantity such as 500m, 2 or 1Gi',
    )
    expect(configError(() => parseConfig('store: ftp://x\n', 'mlops.yaml')).message).to.equal(
      'mlops.yaml:1:8: store: string "ftp://x" is not gs://BUCKET[/PREFIX], file:///absolute/path or a folder',
    )
  })

  it('bad input: a list at the top level', () => {
    expect(configError(() => parseConfig('- a\n', 'mlops.yaml')).message).to.equal(
      'mlops.yaml:1:1: (top level): expected object, got a list',
    )
  })
})
