import {expect} from 'chai'

import {UsageError} from '../../src/errors.js'
import {parseRows} from '../../src/predict/input.js'

function refusal(text: string, source = '--data'): UsageError {
  try {
    parseRows(text, source)
  } catch (error) {
    expect(error).to.be.instanceOf(UsageError)
    return error as UsageError
  }

  throw new Error(`parseRows(${JSON.stringify(text)}) did not throw`)
}

describe('parseRows (predict --data, --file, stdin)', () => {
  describe('JSON', () => {
    it('a list of rows', () => {
      expect(parseRows('[[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]', '--data')).to.deep.equal([
        [5.1, 3.5, 1.4, 0.2],
        [6.2, 3.4, 5.4, 2.3],
      ])
    })

    it('{"data": rows}, the API\'s own request body; other keys are ignored', () => {
      expect(parseRows('{"data": [[1, 2], [3, 4]], "id": "x"}', '--data')).to.deep.equal([
        [1, 2],
        [3, 4],
      ])
    })

    it('a single row of numbers is one row, plain or under "data"', () => {
      expect(parseRows('[1, 2, 3]', '--data')).to.deep.equal([[1, 2, 3]])
      expect(parseRows('{"data": [1, 2]}', '--data')).to.deep.equal([[1, 2]])
    })

    it('whitespace and newlines around the JSON are fine; negative, exponent and integer values are kept', () => {
      expect(parseRows('\n  [[-1, 2e3, 0]]  \n', 'stdin')).to.deep.equal([[-1, 2000, 0]])
    })

    it('bad input: not JSON, with the source named and an example', () => {
      const error = refusal('{"data": [[1, 2]]', 'model-input.json')
      expect(error.message).to.match(/^model-input\.json is not valid JSON: \S/)
      expect(error.suggestion).to.equal('e.g. {"data": [[5.1, 3.5, 1.4, 0.2]]} or [[5.1, 3.5, 1.4, 0.2]]')
    })

    it('bad input: an object without "data", or "data" that is not a list', () => {
      expect(refusal('{"rows": [[1]]}').message).to.equal('--data: expected {"data": [[...]]} or a list of rows')
      expect(refusal('{"data": {"x": 1}}').message).to.equal('--data: expected {"data": [[...]]} or a list of rows')
      expect(refusal('{"data": "1,2"}').message).to.equal('--data: expected {"data": [[...]]} or a list of rows')
    })

    it('bad input: a row with a string, null, a nested list or a number too large for a double', () => {
      expect(refusal('[[1, 2], [3, "4"]]').message).to.equal('--data: row 2 is not a list of numbers')
      expect(refusal('[[1, null]]').message).to.equal('--data: row 1 is not a list of numbers')
      expect(refusal('[1, [2]]').message).to.equal('--data: row 1 is not a list of numbers')
      expect(refusal('[[1e400]]').message).to.equal('--data: row 1 is not a list of numbers')
    })

    it('bad input: rows of different widths', () => {
      expect(refusal('[[1, 2], [3, 4], [5]]').message).to.equal('--data: row 3 has 1 values, row 1 has 2')
    })
  })

  describe('JSON Lines', () => {
    it('one row per line', () => {
      expect(parseRows('[5.1, 3.5, 1.4, 0.2]\n[6.2, 3.4, 5.4, 2.3]\n', '--file rows.jsonl')).to.deep.equal([
        [5.1, 3.5, 1.4, 0.2],
        [6.2, 3.4, 5.4, 2.3],
      ])
    })

    it('bad input: a line that is not JSON → refused as JSON, naming the source', () => {
      expect(refusal('[1, 2]\n[3, 4', 'rows.jsonl').message).to.match(/^rows.jsonl is not valid JSON/)
    })

    it('bad input: a line of strings → refused, naming the row', () => {
      expect(refusal('[1, 2]\n["a", "b"]', 'rows.jsonl').message).to.equal('rows.jsonl: row 2 is not a list of numbers')
    })
  })

  describe('CSV', () => {
    it('one row per line, values trimmed, blank lines and CRLF endings ignored', () => {
      expect(parseRows('5.1, 3.5\r\n\r\n6.2,3.4\n', 'rows.csv')).to.deep.equal([
        [5.1, 3.5],
        [6.2, 3.4],
      ])
    })

    it('a first line of names is a header and skipped', () => {
      expect(parseRows('sepal_length,sepal_width\n5.1,3.5\n6.2,3.4', 'rows.csv')).to.deep.equal([
        [5.1, 3.5],
        [6.2, 3.4],
      ])
    })

    it('a single line of numbers is one row', () => {
      expect(parseRows('1,2,3', '--data')).to.deep.equal([[1, 2, 3]])
    })

    it('bad input: a word after the first line is not a header', () => {
      expect(refusal('a,b\n1,2\nx,y', 'rows.csv').message).to.equal('rows.csv: line 3 has a value that is not a number: x,y')
    })

    it('bad input: a first line that is not a number and has no letters ("1,-,2") is not a header', () => {
      expect(refusal('1,-,2\n3,4,5', 'rows.csv').message).to.equal('rows.csv: line 1 has a value that is not a number: 1,-,2')
    })

    it('bad input: the quoted line is cut at 60 characters', () => {
      const line = `1,${'x'.repeat(80)}`
      expect(refusal(`1,2\n${line}`).message).to.equal(`--data: line 2 has a value that is not a number: ${line.slice(0, 60)}`)
    })

    it('bad input: a header and nothing else has no rows', () => {
      expect(refusal('sepal_length,sepal_width\n', 'rows.csv').message).to.equal('rows.csv has no rows')
    })

    it('bad input: rows of different widths', () => {
      expect(refusal('1,2\n3,4,5', 'rows.csv').message).to.equal('rows.csv: row 2 has 3 values, row 1 has 2')
    })
  })

  for (const empty of ['', ' ', '\n\n', '\t \r\n']) {
    it(`bad input ${JSON.stringify(empty)}: empty, with both forms suggested`, () => {
      expect(refusal(empty, 'stdin').message).to.equal('stdin is empty: give rows as JSON ({"data": [[...]]}) or CSV')
    })
  }
})
