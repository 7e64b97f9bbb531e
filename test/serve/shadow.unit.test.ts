import {expect} from 'chai'

import {refusal} from '../helpers/assert.js'
import {
  describeTarget,
  describeUrl,
  parseShadowConfig,
  parseShadowSample,
  parseShadowTimeout,
  parseShadowUrl,
  sameAnswer,
} from '../../src/serve/shadow.js'

const defaults = {sample: 0.1, timeoutMs: 2000}

describe('shadow settings', () => {
  it('takes an http(s) base URL and describes it without userinfo or query', () => {
    expect(describeUrl(parseShadowUrl('http://candidate:8000'))).to.equal('http://candidate:8000/')
    expect(describeUrl(parseShadowUrl('https://candidate.ns.svc/api/'))).to.equal('https://candidate.ns.svc/api/')
  })

  for (const bad of ['ftp://x', 'candidate:8000', '', 'http://', 'http://candidate/?token=abc', 'http://candidate/#a'])
    it(`refuses the shadow URL ${JSON.stringify(bad)}`, () => {
      expect(refusal(() => parseShadowUrl(bad))).to.match(/^--shadow-url /)
    })

  it('refuses a shadow URL with user:password@ without quoting the password', () => {
    const message = refusal(() => parseShadowUrl('http://user:s3cret-pw@candidate:8000'))
    expect(message).to.include('credentials').and.not.include('s3cret-pw').and.not.include('user:')
  })

  it('refuses a shadow URL with a query without quoting it', () => {
    expect(refusal(() => parseShadowUrl('http://candidate/?key=s3cret-pw'))).to.not.include('s3cret-pw')
  })

  for (const good of [
    ['0.1', 0.1],
    ['1', 1],
    ['1e-3', 0.001],
  ] as const)
    it(`takes the sample ${good[0]}`, () => {
      expect(parseShadowSample(good[0])).to.equal(good[1])
    })

  for (const bad of ['0', '2', 'abc', '-0.5', 'NaN', 'Infinity', '', ' '])
    it(`refuses the sample ${JSON.stringify(bad)}`, () => {
      expect(refusal(() => parseShadowSample(bad))).to.match(/^--shadow-sample .* is not a share above 0 and at most 1$/)
    })

  for (const [text, ms] of [
    ['500ms', 500],
    ['2s', 2000],
    ['2', 2000],
    ['1m', 60_000],
  ] as const)
    it(`reads the timeout ${text} as ${ms} ms`, () => {
      expect(parseShadowTimeout(text)).to.equal(ms)
    })

  for (const bad of ['0ms', '2m', 'fast', '-1s', '1.5s'])
    it(`refuses the timeout ${bad}`, () => {
      expect(refusal(() => parseShadowTimeout(bad))).to.match(/^(--shadow-timeout|invalid --shadow-timeout)/)
    })
})

describe('shadow config file', () => {
  it('is off when empty', () => {
    expect(parseShadowConfig('', defaults)).to.equal(undefined)
    expect(parseShadowConfig(' \n', defaults)).to.equal(undefined)
  })

  it('takes url, sample and timeoutMs, and the defaults for those it leaves out', () => {
    const full = parseShadowConfig('{"url": "http://candidate:8000", "sample": 0.5, "timeoutMs": 300}', defaults)!
    expect([full.urls[0].href, full.sample, full.timeoutMs]).to.deep.equal(['http://candidate:8000/', 0.5, 300])
    const bare = parseShadowConfig('{"url": "http://candidate:8000"}', defaults)!
    expect([bare.sample, bare.timeoutMs]).to.deep.equal([0.1, 2000])
  })

  for (const [name, text, reason] of [
    ['not JSON', '{"url": ', /not JSON/],
    ['an array', '[]', /not a JSON object/],
    ['without url', '{"sample": 0.5}', /exactly one of url and urls/],
    ['with both url and urls', '{"url": "http://c", "urls": ["http://d"]}', /exactly one of url and urls/],
    ['with urls empty', '{"urls": []}', /urls is not a list of 1 to 64 URLs/],
    ['with urls a string', '{"urls": "http://c"}', /urls is not a list/],
    [
      'with 65 urls',
      JSON.stringify({urls: Array.from({length: 65}, (_, i) => `http://10.0.0.${i}:8000`)}),
      /urls is not a list of 1 to 64/,
    ],
    ['with a number in urls', '{"urls": ["http://c", 7]}', /^urls\[1\] is not a string/],
    ['with an ftp url in urls', '{"urls": ["http://c", "ftp://d"]}', /^urls\[1\] must be http/],
    ['with a misspelt field', '{"url": "http://c", "sampel": 0.5}', /unknown field "sampel"/],
    ['with sample 0', '{"url": "http://c", "sample": 0}', /^sample /],
    ['with sample "0.5" (a string)', '{"url": "http://c", "sample": "0.5"}', /^sample /],
    ['with sample 2', '{"url": "http://c", "sample": 2}', /^sample /],
    ['with timeoutMs 0', '{"url": "http://c", "timeoutMs": 0}', /^timeoutMs /],
    ['with timeoutMs of an hour', '{"url": "http://c", "timeoutMs": 3600000}', /^timeoutMs /],
    ['with an ftp url', '{"url": "ftp://c"}', /^url must be http/],
  ] as const)
    it(`refuses a config ${name}`, () => {
      expect(refusal(() => parseShadowConfig(text, defaults))).to.match(reason)
    })

  it('refuses a config whose url has credentials without quoting them', () => {
    expect(refusal(() => parseShadowConfig('{"url": "http://user:s3cret-pw@c"}', defaults))).to.not.include('s3cret-pw')
    expect(refusal(() => parseShadowConfig('{"urls": ["http://c", "http://user:s3cret-pw@d"]}', defaults))).to.not.include('s3cret-pw')
  })

  it('takes urls, the candidate pods mlops deploy --shadow lists, in order', () => {
    const target = parseShadowConfig('{"urls": ["http://10.0.0.7:8000", "http://10.0.0.8:8000/"], "sample": 0.2}', defaults)!
    expect(target.urls.map(url => url.href)).to.deep.equal(['http://10.0.0.7:8000/', 'http://10.0.0.8:8000/'])
    expect(describeTarget(target)).to.equal('http://10.0.0.7:8000/, http://10.0.0.8:8000/')
  })
})

describe('shadow answers compared', () => {
  const tolerance = 1e-4
  it('agrees on equal labels and on numbers within the tolerance', () => {
    expect(sameAnswer('label', {prediction: 'setosa'}, {prediction: 'setosa'}, tolerance)).to.equal(true)
    expect(sameAnswer('label', {prediction: ['a', 'b']}, {prediction: ['a', 'b']}, tolerance)).to.equal(true)
    expect(sameAnswer('prediction', {prediction: [[0.5, 0.5]]}, {prediction: [[0.50005, 0.49995]]}, tolerance)).to.equal(true)
  })

  it('disagrees on a changed label or a number beyond the tolerance', () => {
    expect(sameAnswer('label', {prediction: ['a', 'b']}, {prediction: ['a', 'c']}, tolerance)).to.equal(false)
    expect(sameAnswer('prediction', {prediction: [[0.5, 0.5]]}, {prediction: [[0.6, 0.4]]}, tolerance)).to.equal(false)
  })

  const v2 = (label: number, p: number[], extra: object[] = []) => ({
    model_name: 'iris',
    outputs: [
      {name: 'output_label', datatype: 'INT64', shape: [1], data: [label]},
      {name: 'probabilities', datatype: 'FP32', shape: [1, p.length], data: p},
      ...extra,
    ],
  })
  it('compares v2 outputs by name, shape and data, not the model version', () => {
    expect(sameAnswer('v2', v2(2, [0.1, 0.9]), {...v2(2, [0.1, 0.9]), model_version: '7'}, tolerance)).to.equal(true)
    expect(sameAnswer('v2', v2(2, [0.1, 0.9]), v2(1, [0.1, 0.9]), tolerance)).to.equal(false)
    expect(sameAnswer('v2', v2(2, [0.1, 0.9]), v2(2, [0.1, 0.9], [{name: 'extra', shape: [1], data: [1]}]), tolerance)).to.equal(false)
    const strings = (label: string) => ({outputs: [{name: 'label', shape: [1], data: [label]}]})
    expect(sameAnswer('v2', strings('setosa'), strings('setosa'), tolerance)).to.equal(true)
    expect(sameAnswer('v2', strings('setosa'), strings('virginica'), tolerance)).to.equal(false)
  })

  for (const [name, kind, body] of [
    ['text', 'label', 'garbage'],
    ['null', 'label', null],
    ['a prediction of the wrong length', 'label', {prediction: ['a', 'b', 'c']}],
    ['a prediction of strings where numbers are due', 'prediction', {prediction: [['x', 'y']]}],
    ['v2 without outputs', 'v2', {model_name: 'iris'}],
    ['v2 with an object in its data', 'v2', {outputs: [{name: 'p', shape: [1], data: [{}]}]}],
    [
      'v2 with a duplicated output',
      'v2',
      {
        outputs: [
          {name: 'p', shape: [1], data: [1]},
          {name: 'p', shape: [1], data: [1]},
        ],
      },
    ],
  ] as const)
    it(`throws (an error, not a disagreement) on a candidate answer that is ${name}`, () => {
      const stable = kind === 'v2' ? v2(2, [0.1, 0.9]) : kind === 'label' ? {prediction: ['a', 'b']} : {prediction: [[0.1, 0.9]]}
      expect(() => sameAnswer(kind, stable, body, tolerance)).to.throw()
    })
})
