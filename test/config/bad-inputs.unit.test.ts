import {expect} from 'chai'

import {mergeDeployConfig} from '../../src/config/deploy.js'
import {validateDeployValues} from '../../src/config/load.js'
import {ConfigError, UsageError} from '../../src/errors.js'
import {parseRows} from '../../src/predict/input.js'

function throws(fn: () => unknown, type: new (...args: never[]) => Error, message: RegExp): void {
  let thrown: unknown
  try {
    fn()
  } catch (error) {
    thrown = error
  }

  expect(thrown, 'no error was thrown').to.be.instanceOf(type)
  expect((thrown as Error).message).to.match(message)
}

/** Bad inputs the unit tests found, each refused with a one-line usage or config error. */
describe('bad inputs to the pure rules', () => {
  it("--set after -f never writes into the -f file's objects", () => {
    const file = {gcs: {secretName: 'a'}}
    const merged = mergeDeployConfig(undefined, [file], ['gcs.serviceAccount=sa'])
    expect(merged).to.deep.equal({gcs: {secretName: 'a', serviceAccount: 'sa'}})
    expect(file).to.deep.equal({gcs: {secretName: 'a'}})
  })

  for (const assignment of ['__proto__.polluted=yes', 'constructor.prototype.polluted=yes', 'a.__proto__.polluted=yes']) {
    it(`bad input --set ${assignment}: refused, Object.prototype untouched`, () => {
      throws(() => mergeDeployConfig(undefined, [], [assignment]), UsageError, /is not a deploy key/)
      expect(({} as Record<string, unknown>).polluted).to.equal(undefined)
    })
  }

  it('a -f file with a __proto__ key does not reach Object.prototype', () => {
    const file = JSON.parse('{"__proto__": {"polluted": "yes"}, "replicas": 2}') as Record<string, unknown>
    expect(mergeDeployConfig(undefined, [file], [])).to.deep.equal({replicas: 2})
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined)
  })

  for (const assignment of ['replicas=2\nkind: Secret', 'replicas=2\r', 'env.A=x\n---\nkind: Pod']) {
    it(`bad input --set ${JSON.stringify(assignment)}: a value over several lines → usage error, no key added`, () => {
      throws(() => mergeDeployConfig(undefined, [], [assignment]), UsageError, /its value spans lines/)
    })
  }

  for (const assignment of ['replicas=[1, 2', 'replicas="x', 'replicas=*a', 'replicas={a: 1, a: 2}']) {
    it(`bad input --set ${assignment}: not YAML → usage error naming the key (was a YAML parser error)`, () => {
      throws(() => mergeDeployConfig(undefined, [], [assignment]), UsageError, /^invalid --set replicas: its value is not YAML$/)
    })
  }

  for (const assignment of ['a..b=1', '.c=1', 'deploy.=3', ' =1', 'resources.=1']) {
    it(`bad input --set "${assignment}": an empty key part → usage error`, () => {
      throws(() => mergeDeployConfig(undefined, [], [assignment]), UsageError, /empty part/)
    })
  }

  it('bad input autoscaling minReplicas 20 alone: above the default maxReplicas 10 → config error naming the default', () => {
    throws(
      () => validateDeployValues({autoscaling: {minReplicas: 20}}, 'mlops.yaml'),
      ConfigError,
      /minReplicas \(20\) is above maxReplicas \(10 \(the default\)\)/,
    )
    throws(
      () => validateDeployValues({autoscaling: {maxReplicas: 1}}, 'mlops.yaml'),
      ConfigError,
      /minReplicas \(2 \(the default\)\) is above maxReplicas \(1\)/,
    )
    validateDeployValues({autoscaling: {minReplicas: 5}}, 'mlops.yaml')
  })

  for (const [text, message] of [
    ['[]', /has no rows/],
    ['{"data": []}', /has no rows/],
    ['[[]]', /row 1 is empty/],
    ['[[1, 2], []]', /row 2 is empty/],
  ] as const) {
    it(`bad input rows ${text} → usage error, not an empty row sent`, () => {
      throws(() => parseRows(text, '--data'), UsageError, message)
    })
  }

  for (const line of ['1,,2', '1,2,', '0x10,1', '1,Infinity', ' ,1']) {
    it(`bad input CSV line "${line}": a value that is not a decimal number → usage error (an empty cell is not 0)`, () => {
      throws(() => parseRows(`a,b,c\n${line}\n`, 'rows.csv'), UsageError, /line 2 has a value that is not a number/)
    })
  }

  it('CSV decimals, signs and exponents still parse', () => {
    expect(parseRows('1.5,-2,+3,.5,1e3,2.', 'rows.csv')).to.deep.equal([[1.5, -2, 3, 0.5, 1000, 2]])
  })
})
