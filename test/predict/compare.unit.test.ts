import {expect} from 'chai'

import {UsageError} from '../../src/errors.js'
import {type Answers, compareAnswers, describeFailures, numericOutputs, serverAnswers} from '../../src/predict/compare-rules.js'

const CLASSES = ['setosa', 'versicolor', 'virginica']
const INPUTS = [
  [5.1, 3.5, 1.4, 0.2],
  [6.2, 3.4, 5.4, 2.3],
  [5.9, 3.0, 4.2, 1.5],
  [6.0, 2.2, 5.0, 1.5],
]
const A: Answers = {
  classes: CLASSES,
  outputs: [
    {label: 'setosa', prediction: [0.9, 0.05, 0.05]},
    {label: 'virginica', prediction: [0.0, 0.1, 0.9]},
    {label: 'versicolor', prediction: [0.1, 0.8, 0.1]},
    {label: 'versicolor', prediction: [0.0, 0.6, 0.4]},
  ],
}
const B: Answers = {
  classes: CLASSES,
  outputs: [
    {label: 'setosa', prediction: [0.9, 0.05, 0.05]},
    {label: 'virginica', prediction: [0.0, 0.2, 0.8]},
    {label: 'versicolor', prediction: [0.1, 0.75, 0.15]},
    {label: 'virginica', prediction: [0.0, 0.3, 0.7]},
  ],
}

const compare = (a: Answers, b: Answers, thresholds = {}, worst = 5, inputs = INPUTS) => compareAnswers(inputs, a, b, {worst, thresholds})

function usageError(run: () => unknown): UsageError {
  try {
    run()
  } catch (error) {
    expect(error).to.be.instanceOf(UsageError)
    return error as UsageError
  }

  throw new Error('it did not throw')
}

describe('model compare rules: agreement, differences per output, the worst rows', () => {
  it('agreement is the share of rows with equal labels; the disagreeing rows are numbered from 1', () => {
    const result = compare(A, B)
    expect(result.agreement).to.equal(0.75)
    expect(result.disagreeing).to.deep.equal([4])
  })

  it('per class: the max and mean |Δ| over the rows, and the row of the max', () => {
    const {outputs, maxDelta} = compare(A, B)
    const byName = Object.fromEntries(outputs.map(o => [o.output, o]))
    expect(Object.keys(byName)).to.deep.equal(['probability(setosa)', 'probability(versicolor)', 'probability(virginica)'])
    expect(byName['probability(setosa)']).to.include({max: 0, mean: 0})
    expect(byName['probability(virginica)'].max).to.be.closeTo(0.3, 1e-12)
    expect(byName['probability(virginica)'].row).to.equal(4)
    expect(byName['probability(virginica)'].mean).to.be.closeTo((0.1 + 0.05 + 0.3) / 4, 1e-12)
    expect(maxDelta).to.be.closeTo(0.3, 1e-12)
  })

  it('worst rows: disagreements first, then by |Δ|; rows without a difference are not listed; --worst caps them', () => {
    const {worst} = compare(A, B)
    expect(worst.map(row => row.row)).to.deep.equal([4, 2, 3])
    expect(worst[0]).to.deep.include({agree: false, input: INPUTS[3], a: A.outputs[3], b: B.outputs[3]})
    expect(compare(A, B, {}, 1).worst.map(row => row.row)).to.deep.equal([4])
  })

  it('the same answers: agreement 1, every |Δ| 0, no worst rows, no failure at --min-agreement 1 --max-delta 0', () => {
    const result = compare(A, A, {minAgreement: 1, maxDelta: 0})
    expect(result).to.include({agreement: 1, maxDelta: 0})
    expect(result.worst).to.deep.equal([])
    expect(result.failures).to.deep.equal([])
  })

  it('classes in another order are matched by class, not by column', () => {
    const reordered: Answers = {
      classes: ['virginica', 'setosa', 'versicolor'],
      outputs: A.outputs.map(({label, prediction}) => {
        const [s, ve, vi] = prediction as number[]
        return {label, prediction: [vi, s, ve]}
      }),
    }
    expect(compare(A, reordered)).to.include({agreement: 1, maxDelta: 0})
  })

  it('classes only one side names are listed as not compared', () => {
    const named: Answers = {...B, classes: ['0', '1', '2']}
    const result = compare(A, named)
    expect(result.outputs).to.deep.equal([])
    expect(result.unmatched).to.deep.equal([
      'probability(0)',
      'probability(1)',
      'probability(2)',
      'probability(setosa)',
      'probability(versicolor)',
      'probability(virginica)',
    ])
  })

  it('regressors (no labels): agreement null, differences by output path', () => {
    const a: Answers = {outputs: [{prediction: [150.5]}, {prediction: [80]}]}
    const b: Answers = {outputs: [{prediction: [151]}, {prediction: [80]}]}
    const result = compare(a, b, {maxDelta: 1}, 5, [[1], [2]])
    expect(result.agreement).to.equal(null)
    expect(result.outputs).to.deep.equal([{output: 'prediction[0]', max: 0.5, mean: 0.25, row: 1}])
    expect(result.failures).to.deep.equal([])
  })

  it('bad threshold: --min-agreement where a side gives no labels is a usage error that suggests --max-delta', () => {
    const a: Answers = {outputs: [{prediction: [1]}]}
    const error = usageError(() => compare(a, a, {minAgreement: 0.5}, 5, [[1]]))
    expect(error.message).to.match(/--min-agreement needs labels from both sides/)
    expect(error.suggestion).to.match(/--max-delta/)
  })

  it('--min-agreement above the agreement fails, naming the threshold, the figure and the rows', () => {
    const result = compare(A, B, {minAgreement: 0.8})
    expect(result.failures).to.deep.equal([{threshold: 'min-agreement', limit: 0.8, measured: 0.75, count: 1, rows: [4]}])
    expect(describeFailures(result.failures, result.rows)).to.equal(
      'agreement 0.75 is below --min-agreement 0.8: 1 of 4 rows disagree (row 4)',
    )
    expect(compare(A, B, {minAgreement: 0.75}).failures).to.deep.equal([])
  })

  it('--max-delta below the largest |Δ| fails, counting the rows over it; both failures in one line', () => {
    const result = compare(A, B, {minAgreement: 1, maxDelta: 0.07})
    expect(result.failures.map(f => f.threshold)).to.deep.equal(['min-agreement', 'max-delta'])
    expect(result.failures[1]).to.deep.include({limit: 0.07, count: 2, rows: [2, 4]})
    expect(describeFailures(result.failures, result.rows)).to.equal(
      'agreement 0.75 is below --min-agreement 1: 1 of 4 rows disagree (row 4); ' +
        'max |Δ| 0.300 is above --max-delta 0.07: 2 of 4 rows differ by more (rows 2, 4)',
    )
  })

  it('a failure over more rows than it names ends the list with ...', () => {
    const many = Array.from({length: 8}, (_, i) => [i])
    const a: Answers = {outputs: many.map(() => ({label: 'x', prediction: [1]}))}
    const b: Answers = {outputs: many.map(() => ({label: 'y', prediction: [1]}))}
    const result = compare(a, b, {minAgreement: 0.5}, 5, many)
    expect(describeFailures(result.failures, result.rows)).to.equal(
      'agreement 0 is below --min-agreement 0.5: 8 of 8 rows disagree (rows 1, 2, 3, 4, 5, ...)',
    )
  })

  it('numericOutputs: several outputs by name and index; labels (strings, booleans) left out', () => {
    expect([...numericOutputs({label: ['a'], scores: [0.5, -1], ok: true})]).to.deep.equal([
      ['scores[0]', 0.5],
      ['scores[1]', -1],
    ])
    expect([...numericOutputs(3)]).to.deep.equal([['prediction', 3]])
  })
})

describe("model compare: a server's answers, read strictly", () => {
  const where = 'http://127.0.0.1:1/predict (rows 1-2)'

  it('{"prediction": [...]} with one answer per row', () => {
    expect(
      serverAnswers(
        {
          prediction: [
            [0.1, 0.9],
            [1, 0],
          ],
        },
        2,
        'prediction',
        where,
      ),
    ).to.deep.equal([
      [0.1, 0.9],
      [1, 0],
    ])
    expect(serverAnswers({prediction: ['a', 'b']}, 2, 'label', where)).to.deep.equal(['a', 'b'])
    // /predict/label answers a single row with the label itself.
    expect(serverAnswers({prediction: 'setosa'}, 1, 'label', where)).to.deep.equal(['setosa'])
  })

  const bad: Array<[string, unknown, 'prediction' | 'label', RegExp]> = [
    ['text that is not JSON', '<html>oops</html>', 'prediction', /answered text "<html>oops<\/html>", not \{"prediction": \[\.\.\.\]\}/],
    ['JSON without "prediction"', {result: []}, 'prediction', /answered JSON "\{\\"result\\":\[\]\}", not \{"prediction"/],
    ['a list as the body', [[1]], 'prediction', /not \{"prediction"/],
    ['one prediction for two rows', {prediction: [[1, 0]]}, 'prediction', /answered 1 predictions for 2 rows/],
    ['three predictions for two rows', {prediction: [[1], [2], [3]]}, 'prediction', /answered 3 predictions for 2 rows/],
    ['a prediction that is not a list', {prediction: 5}, 'prediction', /answered JSON "5" for 2 rows/],
    [
      'a string among the probabilities',
      {
        prediction: [
          [0.5, 'x'],
          [1, 0],
        ],
      },
      'prediction',
      /row 1 with JSON .*, not numbers/,
    ],
    ['null as a prediction', {prediction: [[1, 0], null]}, 'prediction', /row 2 with JSON "null", not numbers/],
    ['an empty prediction', {prediction: [[], [1]]}, 'prediction', /row 1 with JSON "\[\]", not numbers/],
    ['a label that is an object', {prediction: ['a', {}]}, 'label', /row 2 with JSON "\{\}", not a label/],
  ]
  for (const [name, body, kind, message] of bad) {
    it(`bad answer: ${name} → a usage error naming the URL and rows`, () => {
      const error = usageError(() => serverAnswers(body, 2, kind, where))
      expect(error.message).to.match(message)
      expect(error.message.startsWith(where)).to.equal(true)
      expect(error.suggestion).to.match(/check --url/)
    })
  }
})
