import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {join} from 'node:path'

describe('npm run quickstart (the README\'s first command)', () => {
  it('runs the whole flow on the embedded defaults and cleans up after itself', () => {
    const script = join(import.meta.dirname, '..', 'scripts', 'quickstart.js')
    const run = spawnSync(process.execPath, [script], {encoding: 'utf8', env: {...process.env, CI: 'true'}, timeout: 60_000})
    expect(run.status, run.stderr).to.equal(0)
    expect(run.stdout).to.contain('$ mlops model push')
    expect(run.stdout).to.match(/iris@1 up to date at workdir\/model\.onnx/)
    expect(run.stdout).to.contain('{"prediction":"virginica"}')
    expect(run.stdout).to.match(/iris@1 serving at http:\/\/127\.0\.0\.1:\d+/)
    expect(run.stdout).to.match(/REQUESTS\s+ERRORS\s+REQ\/S/)
    expect(run.stdout).to.match(/stopped mlops serve \(pid \d+, iris@1\)/)
    const work = /Working in (\S+)/.exec(run.stdout)![1]
    expect(spawnSync('test', ['-e', work]).status).to.equal(1)
  })
})
