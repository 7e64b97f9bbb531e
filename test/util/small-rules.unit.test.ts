import {expect} from 'chai'

import {
  ConflictError,
  ExitCode,
  NotFoundError,
  PermissionError,
  UnavailableError,
  UsageError,
  errorMessage,
  isMlopsError,
  systemError,
} from '../../src/errors.js'
import {registryOf} from '../../src/images/names.js'
import {inFlightBudget} from '../../src/serve/limits.js'
import {closestMatch, formatBytes} from '../../src/util/text.js'

const MiB = 1 << 20

describe('small rules', () => {
  describe('inFlightBudget (request bytes in flight, from the memory limit)', () => {
    it('(limit - 200 MiB) / 40, rounded down', () => {
      expect(inFlightBudget(MiB, 1024 * MiB)).to.equal(Math.floor((824 * MiB) / 40))
      expect(inFlightBudget(MiB, 200 * MiB + 4001)).to.equal(MiB)
      expect(inFlightBudget(1, 200 * MiB + 4001)).to.equal(100)
    })

    it('never below one largest body, even when the limit is under the 200 MiB baseline', () => {
      expect(inFlightBudget(10 * MiB, 100 * MiB)).to.equal(10 * MiB)
    })

    it('no memory limit: 32 MiB, or the body limit when that is larger', () => {
      expect(inFlightBudget(MiB, undefined)).to.equal(32 * MiB)
      expect(inFlightBudget(64 * MiB, undefined)).to.equal(64 * MiB)
    })
  })

  describe('systemError (operating system refusals as documented errors)', () => {
    const errno = (code: string, extra: Record<string, unknown> = {}) => Object.assign(new Error(code), {code, ...extra})

    it('ENOENT, ENOTDIR, EISDIR name the path', () => {
      expect(systemError(errno('ENOENT', {path: '/x/model.onnx'}))).to.deep.include({
        message: 'no such file or folder: /x/model.onnx',
        code: 'NOT_FOUND',
      })
      expect(systemError(errno('ENOENT'))!.message).to.equal('no such file or folder: (unnamed)')
      expect(systemError(errno('ENOTDIR', {path: '/x/a'}))!.message).to.equal('a part of the path /x/a is a file, not a folder')
      expect(systemError(errno('EISDIR', {path: '/x'}))!.message).to.equal('/x is a folder, not a file')
      expect(systemError(errno('ENOENT'))).to.be.instanceOf(NotFoundError)
    })

    it('EEXIST: from mkdir a usage error, otherwise a conflict; dest counts as the path', () => {
      expect(systemError(errno('EEXIST', {syscall: 'mkdir', path: '/x/f'})))
        .to.be.instanceOf(UsageError)
        .and.to.deep.include({message: '/x/f is a file, not a folder'})
      expect(systemError(errno('EEXIST', {syscall: 'rename', dest: '/x/g'})))
        .to.be.instanceOf(ConflictError)
        .and.to.deep.include({message: '/x/g already exists'})
    })

    it('EACCES, EPERM, EROFS are permission errors (exit 6); ENOSPC is unavailable (exit 7)', () => {
      const denied = systemError(errno('EACCES', {path: '/root/x'}))!
      expect(denied).to.be.instanceOf(PermissionError)
      expect(denied.message).to.equal('permission denied: /root/x')
      expect(denied.exitCode).to.equal(ExitCode.PERMISSION)
      expect(systemError(errno('EPERM'))!.message).to.equal('permission denied: (unnamed)')
      expect(systemError(errno('EROFS', {path: '/ro'}))!.message).to.equal('read-only file system: /ro')
      const full = systemError(errno('ENOSPC', {path: '/data'}))!
      expect(full).to.be.instanceOf(UnavailableError)
      expect(full.message).to.equal('no space left on the device for /data')
    })

    it('listen errors: a privileged port, a port in use, an address not of this machine', () => {
      expect(systemError(errno('EACCES', {syscall: 'listen', port: 80}))!.message).to.equal(
        'cannot listen on port 80: ports below 1024 need root',
      )
      expect(systemError(errno('EADDRINUSE', {syscall: 'listen', address: '127.0.0.1', port: 8000}))!.message).to.equal(
        'port 8000 on 127.0.0.1 is already in use',
      )
      expect(systemError(errno('EADDRNOTAVAIL', {syscall: 'listen', address: '10.9.9.9', port: 8000}))!.message).to.equal(
        'cannot listen on 10.9.9.9: not an address of this machine',
      )
      expect(systemError(errno('ENOTFOUND', {syscall: 'getaddrinfo', hostname: 'nohost'}))!.message).to.equal(
        'cannot listen on nohost: not an address of this machine',
      )
    })

    it('anything else is left undefined (a bug, not a user error)', () => {
      expect(systemError(errno('ECONNRESET'))).to.equal(undefined)
      expect(systemError(new Error('plain'))).to.equal(undefined)
      expect(systemError(undefined)).to.equal(undefined)
      expect(systemError(Object.assign(new Error('x'), {code: 404}))).to.equal(undefined)
    })
  })

  describe('isMlopsError and errorMessage', () => {
    it('an MlopsError, or an Error that carries a known code and an exit code (from another copy of the module)', () => {
      expect(isMlopsError(new UsageError('x'))).to.equal(true)
      expect(isMlopsError(Object.assign(new Error('x'), {code: 'USAGE', exitCode: 2}))).to.equal(true)
      expect(isMlopsError(Object.assign(new Error('x'), {code: 'ENOENT', exitCode: 2}))).to.equal(false)
      expect(isMlopsError(Object.assign(new Error('x'), {code: 'USAGE'}))).to.equal(false)
      expect(isMlopsError({code: 'USAGE', exitCode: 2})).to.equal(false)
    })

    it("errorMessage: an Error's message, anything else as a string", () => {
      expect(errorMessage(new Error('boom'))).to.equal('boom')
      expect(errorMessage('text')).to.equal('text')
      expect(errorMessage(42)).to.equal('42')
      expect(errorMessage(undefined)).to.equal('undefined')
    })
  })

  describe('closestMatch ("did you mean")', () => {
    it('the candidate within edit distance 2, case-insensitive, the closest first', () => {
      expect(closestMatch('replica', ['name', 'replicas', 'port'])).to.equal('replicas')
      expect(closestMatch('NMAE', ['name', 'model'])).to.equal('name')
      expect(closestMatch('prot', ['port', 'pdb'])).to.equal('port')
      expect(closestMatch('nodeselectr', ['nodeSelector', 'name'])).to.equal('nodeSelector')
    })

    it('nothing within distance 2: undefined', () => {
      expect(closestMatch('autoscale', ['autoscaling'])).to.equal(undefined)
      expect(closestMatch('x', [])).to.equal(undefined)
    })
  })

  describe('formatBytes', () => {
    for (const [bytes, text] of [
      [0, '0 B'],
      [1023, '1023 B'],
      [1024, '1.0 KiB'],
      [1536, '1.5 KiB'],
      [100 * MiB, '100 MiB'],
      [99.94 * MiB, '99.9 MiB'],
      [5 * 1024 ** 3, '5.0 GiB'],
      [2 * 1024 ** 5, '2048 TiB'],
    ] as const) {
      it(`${bytes} is "${text}"`, () => {
        expect(formatBytes(bytes)).to.equal(text)
      })
    }
  })

  describe("registryOf (the Docker CLI's rule for an image reference)", () => {
    for (const [ref, registry] of [
      ['mlops/iris/api:abc', 'docker.io'],
      ['ubuntu', 'docker.io'],
      ['registry.example.com/team/api:1', 'registry.example.com'],
      ['localhost:5000/api:1', 'localhost:5000'],
      ['localhost/api', 'localhost'],
      ['127.0.0.1:5000/api', '127.0.0.1:5000'],
      ['europe-docker.pkg.dev/p/r/api@sha256:abc', 'europe-docker.pkg.dev'],
    ] as const) {
      it(`${ref} → ${registry}`, () => {
        expect(registryOf(ref)).to.equal(registry)
      })
    }
  })
})
