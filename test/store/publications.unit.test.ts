import {expect} from 'chai'

import {parseRepository} from '../../src/images/registry.js'
import {UsageError} from '../../src/errors.js'
import {type Publication, parsePublications} from '../../src/store/publications.js'
import {pickPublication} from '../../src/targets/k8s/delivery.js'

const DIGEST = `sha256:${'a'.repeat(64)}`
const record = (images: unknown[]) => Buffer.from(JSON.stringify({images}))

describe('published model images: the store record and the repository names', () => {
  it('a good record parses; publishedAt is kept short', () => {
    expect(
      parsePublications(
        record([{repository: 'registry.example.com/team/iris-model', digest: DIGEST, tag: '3', publishedAt: '2026-11-28T00:00:00Z'}]),
      ),
    ).to.deep.equal([{repository: 'registry.example.com/team/iris-model', digest: DIGEST, tag: '3', publishedAt: '2026-11-28T00:00:00Z'}])
  })

  for (const [name, images, message] of [
    ['a repository with a space', [{repository: 'evil repo/x', digest: DIGEST, tag: '1'}], /repository is not REGISTRY\/REPOSITORY/],
    ['a repository without a registry', [{repository: 'team/iris', digest: DIGEST, tag: '1'}], /repository is not REGISTRY\/REPOSITORY/],
    ['a digest that is not sha256', [{repository: 'r.io/a', digest: 'md5:abc', tag: '1'}], /digest is not sha256/],
    ['a digest with a newline', [{repository: 'r.io/a', digest: `${DIGEST}\nx`, tag: '1'}], /digest is not sha256/],
    ['a tag that is a flag', [{repository: 'r.io/a', digest: DIGEST, tag: '--privileged'}], /tag is not an image tag/],
    ['an entry that is null', [null], /repository/],
  ] as const) {
    it(`bad record: ${name} → refused`, () => {
      expect(() => parsePublications(record([...images]))).to.throw(message)
    })
  }

  it('bad record: not JSON, or no images list → refused', () => {
    expect(() => parsePublications(Buffer.from('{'))).to.throw(/not JSON/)
    expect(() => parsePublications(Buffer.from('{"images": {}}'))).to.throw(/no "images" list/)
  })

  it('pickPublication: the preferred repository, else the most recent; none → undefined', () => {
    const a: Publication = {repository: 'r.io/a', digest: DIGEST, tag: '1', publishedAt: '2026-01-02T00:00:00Z'}
    const b: Publication = {repository: 'r.io/b', digest: DIGEST, tag: '1', publishedAt: '2026-03-01T00:00:00Z'}
    expect(pickPublication([b, a])).to.equal(b)
    expect(pickPublication([a, b], 'r.io/a')).to.equal(a)
    expect(pickPublication([a, b], 'r.io/c')).to.equal(undefined)
    expect(pickPublication([])).to.equal(undefined)
  })

  it('parseRepository: REGISTRY/REPOSITORY with a port or localhost', () => {
    expect(parseRepository('127.0.0.1:5000/models/iris')).to.deep.equal({registry: '127.0.0.1:5000', repository: 'models/iris'})
    expect(parseRepository('localhost/iris')).to.deep.equal({registry: 'localhost', repository: 'iris'})
    expect(parseRepository('europe-docker.pkg.dev/p/r/iris-model')).to.deep.equal({
      registry: 'europe-docker.pkg.dev',
      repository: 'p/r/iris-model',
    })
  })

  for (const text of [
    'iris',
    'team/iris',
    'r.io/Iris',
    'r.io/iris:1',
    'r.io/iris@sha256:00',
    'r.io/',
    'r.io//x',
    'r.io/x/../y',
    'r io/x',
  ]) {
    it(`bad input: parseRepository("${text}") → usage error`, () => {
      expect(() => parseRepository(text)).to.throw(UsageError)
    })
  }
})
