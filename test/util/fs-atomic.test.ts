import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {existsSync, readdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {removeStaleTemps, tempPathFor} from '../../src/util/fs-atomic.js'
import {tempDir} from '../helpers/stores.js'

describe('temp files left by killed writers', () => {
  const touch = (dir: string, name: string) => writeFileSync(join(dir, name), 'partial')

  it("removes those of dead processes and of our own process id (a restarted container is PID 1 again); keeps a live process's and other files", async () => {
    const dir = tempDir()
    const dead = 2 ** 22 + 12_345 // above pid_max on these machines: no such process
    touch(dir, `.model.onnx.${dead}.0123abcd.tmp`)
    touch(dir, `.model.onnx.${process.pid}.0123abce.tmp`)
    touch(dir, `.model.onnx.${process.ppid}.0123abcf.tmp`)
    touch(dir, `.labels.json.${dead}.0123abd0.tmp`)
    touch(dir, 'model.onnx')
    touch(dir, `.model.onnx.${dead}.not-hex.tmp`)
    const removed = await removeStaleTemps(join(dir, 'model.onnx'))
    expect(removed.sort()).to.deep.equal([`.model.onnx.${dead}.0123abcd.tmp`, `.model.onnx.${process.pid}.0123abce.tmp`].sort())
    expect(readdirSync(dir).sort()).to.deep.equal(
      [
        `.labels.json.${dead}.0123abd0.tmp`,
        `.model.onnx.${dead}.not-hex.tmp`,
        `.model.onnx.${process.ppid}.0123abcf.tmp`,
        'model.onnx',
      ].sort(),
    )
  })

  it('a destination name with regular-expression characters matches only itself', async () => {
    const dir = tempDir()
    touch(dir, '.m+1.onnx.999999999.0123abcd.tmp')
    touch(dir, '.mm1.onnx.999999999.0123abcd.tmp')
    expect(await removeStaleTemps(join(dir, 'm+1.onnx'))).to.deep.equal(['.m+1.onnx.999999999.0123abcd.tmp'])
  })

  it('a missing folder removes nothing and does not fail', async () => {
    expect(await removeStaleTemps(join(tempDir(), 'absent', 'model.onnx'))).to.deep.equal([])
  })

  it('tempPathFor names a hidden file beside the destination that removeStaleTemps recognises', () => {
    expect(tempPathFor('/x/y/model.onnx')).to.match(new RegExp(`^/x/y/\\.model\\.onnx\\.${process.pid}\\.[0-9a-f]{8}\\.tmp$`))
  })

  it('a Ctrl-C while a temp file is tracked removes it, and leaves the process to a handler that owns the signal (an interrupted deploy), never cutting it short', () => {
    const temp = join(tempDir(), '.state.json.1.abcdef01.tmp')
    writeFileSync(temp, 'partial')
    // The owner: an interrupted deploy's handler, which needs a moment to clean up, then exits 130;
    // a second SIGINT reaching it (the temp tracker raising the signal again) would exit 131.
    const script = `
      import {trackTemp} from ${JSON.stringify(join(import.meta.dirname, '..', '..', 'src', 'util', 'fs-atomic.ts'))}
      let calls = 0
      process.on('SIGINT', () => {
        calls++
        if (calls > 1) process.exit(131)
        setTimeout(() => process.exit(130), 300)
      })
      trackTemp(${JSON.stringify(temp)})
      process.kill(process.pid, 'SIGINT')
      setTimeout(() => {}, 5000)
    `
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {encoding: 'utf8'})
    expect({status: run.status, signal: run.signal, stderr: run.stderr}).to.deep.equal({status: 130, signal: null, stderr: ''})
    expect(existsSync(temp)).to.equal(false)
  })

  it('a Ctrl-C while a temp file is tracked and no one else handles it: the temp goes and the signal ends the process as it would have', () => {
    const temp = join(tempDir(), '.model.onnx.1.abcdef02.tmp')
    writeFileSync(temp, 'partial')
    const script = `
      import {trackTemp} from ${JSON.stringify(join(import.meta.dirname, '..', '..', 'src', 'util', 'fs-atomic.ts'))}
      trackTemp(${JSON.stringify(temp)})
      process.kill(process.pid, 'SIGINT')
      setTimeout(() => {}, 5000)
    `
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {encoding: 'utf8'})
    expect({status: run.status, signal: run.signal}).to.deep.equal({status: null, signal: 'SIGINT'})
    expect(existsSync(temp)).to.equal(false)
  })
})
