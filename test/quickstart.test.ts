import {expect} from 'chai'
import {spawn} from 'node:child_process'
import {readdirSync} from 'node:fs'
import {join} from 'node:path'

import {processesWith, stillRunning} from './helpers/processes.js'

describe("npm run quickstart (the README's first command)", () => {
  it('runs the whole flow on the embedded defaults and cleans up after itself: its mlops serve is gone, its folder removed', async () => {
    const script = join(import.meta.dirname, '..', 'scripts', 'quickstart.js')
    const child = spawn(process.execPath, [script], {env: {...process.env, CI: 'true'}, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', chunk => {
      stdout += chunk
    })
    child.stderr.on('data', chunk => {
      stderr += chunk
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    const exited = new Promise<number | null>(resolve => {
      child.once('close', code => resolve(code))
    })
    // While it runs, every mlops serve started from its work folder, seen in /proc (not taken from its output).
    const serves = new Map<number, string>()
    let running = true
    void exited.then(() => {
      running = false
    })
    while (running) {
      const work = /Working in (\S+)/.exec(stdout)?.[1]
      if (work) for (const [pid, cmdline] of processesWith(work)) if (/ serve /.test(cmdline)) serves.set(pid, cmdline)
      await new Promise(resolve => {
        setTimeout(resolve, 50)
      })
    }

    clearTimeout(timer)
    expect(await exited, stderr).to.equal(0)
    expect(stdout).to.contain('$ mlops model push')
    expect(stdout).to.match(/iris@1 up to date at workdir\/model\.onnx/)
    expect(stdout).to.contain('{"prediction":"virginica"}')
    expect(stdout).to.match(/iris@1 serving at http:\/\/127\.0\.0\.1:\d+/)
    expect(stdout).to.match(/REQUESTS\s+ERRORS\s+REQ\/S/)
    // The reference rows pushed with the sample, answered the same by the deployment.
    expect(stdout).to.match(
      /iris@1 vs http:\/\/127\.0\.0\.1:\d+ on 1000 rows \(iris@1 reference set\)\n {2}iris@1 now vs recorded \(onnxruntime-node [\d.]+\): agreement 1, max \|Δ\| 0\nagreement {2}1 \(0 rows disagree\)/,
    )
    const stopped = Number(/stopped mlops serve \(pid (\d+), iris@1\)/.exec(stdout)?.[1])
    const work = /Working in (\S+)/.exec(stdout)![1]

    // The background server really ran (the scan sees it), is the one delete reports stopping, and is gone now.
    expect([...serves.keys()], 'the mlops serve processes seen while the quickstart ran').to.deep.equal([stopped])
    expect(processesWith(work), "processes still running from the quickstart's folder").to.deep.equal(new Map())
    expect(stillRunning(stopped, work), `pid ${stopped} still runs mlops serve`).to.equal(false)
    expect(() => readdirSync(work), `${work} still exists`).to.throw(/ENOENT/)
  })
})
