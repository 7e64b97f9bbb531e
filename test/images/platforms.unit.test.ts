import {expect} from 'chai'

import {ExitCode} from '../../src/errors.js'
import {baseImages, parsePlatforms, platformOf, platformRef} from '../../src/images/platforms.js'

describe('image platforms: names, base images per platform, tags', () => {
  it('platforms from repeated and comma-separated values (a flag, or its environment variable as one string), deduplicated in order', () => {
    expect(parsePlatforms(['linux/arm64,linux/amd64', 'linux/arm64/v8'], '--platform')).to.deep.equal(['linux/arm64', 'linux/amd64'])
    expect(parsePlatforms('linux/amd64, linux/arm64', '--platform')).to.deep.equal(['linux/amd64', 'linux/arm64'])
  })

  for (const bad of ['linux/s390x', 'windows/amd64', 'amd64', 'linux', '', 'linux/arm/v7'])
    it(`bad input: platform "${bad}" → a usage error (exit 2) naming it and the two platforms`, () => {
      let thrown: (Error & {exitCode?: number}) | undefined
      try {
        parsePlatforms([bad], '--platform')
      } catch (error) {
        thrown = error as Error & {exitCode?: number}
      }

      expect(thrown?.exitCode).to.equal(ExitCode.USAGE)
      expect(thrown?.message).to.match(
        bad ? /^invalid --platform ".*": mlops images are built for linux\/amd64 and linux\/arm64/ : /names no platform/,
      )
    })

  it('an engine or node platform as it reports itself (Go or uname names) maps to ours; anything else is not one', () => {
    expect(platformOf('linux', 'x86_64')).to.equal('linux/amd64')
    expect(platformOf('linux', 'aarch64')).to.equal('linux/arm64')
    expect(platformOf('linux', 'arm64')).to.equal('linux/arm64')
    expect(platformOf('linux', 's390x')).to.equal(undefined)
    expect(platformOf('windows', 'amd64')).to.equal(undefined)
    expect(platformOf(undefined, undefined)).to.equal(undefined)
  })

  it('base images: a flag for one platform, then a flag for all, then image.base for one, then image.base, then node:20-slim', () => {
    const both = ['linux/amd64', 'linux/arm64'] as const
    expect(baseImages(both, [], undefined)).to.deep.equal({'linux/amd64': 'node:20-slim', 'linux/arm64': 'node:20-slim'})
    expect(baseImages(both, [], 'base:1')).to.deep.equal({'linux/amd64': 'base:1', 'linux/arm64': 'base:1'})
    expect(baseImages(both, [], {'linux/arm64': 'arm:1'})).to.deep.equal({'linux/amd64': 'node:20-slim', 'linux/arm64': 'arm:1'})
    expect(baseImages(both, ['all:2'], {'linux/arm64': 'arm:1'})).to.deep.equal({'linux/amd64': 'all:2', 'linux/arm64': 'all:2'})
    expect(baseImages(both, 'all:2,linux/arm64=arm:2', 'base:1')).to.deep.equal({'linux/amd64': 'all:2', 'linux/arm64': 'arm:2'})
  })

  for (const bad of ['linux/s390x=x:1', 'linux/arm64='])
    it(`bad input: --base-image "${bad}" → a usage error (exit 2)`, () => {
      expect(() => baseImages(['linux/amd64'], [bad], undefined)).to.throw(/invalid --(base-image|platform)/)
    })

  it('one platform of several is tagged <tag>-<arch>', () => {
    expect(platformRef('registry.example/iris/api:1.4', 'linux/arm64')).to.equal('registry.example/iris/api:1.4-arm64')
  })
})
