import {expect} from 'chai'
import {readFileSync} from 'node:fs'

import {KUBERNETES, README, normalise, storySteps} from '../helpers/readme.js'
import {shellWords} from '../helpers/shell-words.js'
import {type RealNodeProject, realNodeProject} from './environment.js'

/**
 * Part 3 of the README's by-hand story ("On Kubernetes") run as written on the real node: the
 * project as `mlops init` makes it with the store, registry and node settings the part describes
 * (here: the GCS emulator, the local registry, the real node), then every `$ mlops ...` line of
 * the part in order, its output compared with the README's, ids, buckets and pods aside.
 */
describe('README.md part 3 runs as written on a real node (output compared)', function () {
  this.timeout(10 * 60 * 1000)
  let setup: RealNodeProject
  let broken: string | undefined

  before(async function () {
    this.timeout(45 * 60 * 1000)
    // The deployment is named iris in the namespace iris, as in the README; no model pushed yet.
    setup = await realNodeProject('iris', {pushModels: false})
  })

  after(async () => {
    await setup?.mlops('delete', '--yes')
    // stop() removes the namespace too: later tests on the same control plane deploy into one named iris.
    await setup?.stop()
  })

  for (const step of storySteps(readFileSync(README, 'utf8'), KUBERNETES))
    it(`$ ${step.line}`, async function () {
      // A step after a failed one fails too (never a silent skip), naming the step that broke the story.
      if (broken) throw new Error(`not run: the README's story broke at $ ${broken}`)
      broken = step.line
      const argv = shellWords(step.line)
      expect(argv[0], "the README's story runs only mlops").to.equal('mlops')
      const run = await setup.mlops(...argv.slice(1))
      // A terminal shows predict's "forwarding" line (stderr) before the answer (stdout).
      const output = run.stderr + run.stdout
      expect(run.code, `exit code of: ${step.line}\n${output}`).to.equal(0)
      broken = undefined
      expect(normalise(output).join('\n'), `the output README.md shows for $ ${step.line}`).to.equal(
        normalise(step.expected.join('\n')).join('\n'),
      )
    })
})
