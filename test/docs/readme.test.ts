import {expect} from 'chai'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {dockerEngine} from '../env/docker.js'
import {runCli} from '../helpers/cli.js'
import {restoreEnv} from '../helpers/env.js'
import {DOCKER, KUBERNETES, LOCAL, README, consoleBlocks, normalise, storyHeadings, storySteps} from '../helpers/readme.js'
import {shellWords} from '../helpers/shell-words.js'

/**
 * The README's by-hand story ("Your own project, step by step"), run as written: every
 * `$ mlops ...` line of its ```console blocks with the real CLI, in order, in a fresh
 * folder, and each command's output compared with the lines the README shows under it.
 * What differs from run to run (ports, pids, ids, paths, times, sizes, sha256 prefixes,
 * latency figures) is normalised on both sides; anything else that differs is drift.
 */

describe('README.md: every part of the story is run by a test, and yields steps', () => {
  const markdown = readFileSync(README, 'utf8')

  it('the story has exactly parts 1 and 2 (run here) and 3 (run on the real node by test/e2e/docs-k8s.test.ts)', () => {
    expect(storyHeadings(markdown)).to.deep.equal([LOCAL, DOCKER, KUBERNETES])
  })

  it('each part yields at least one step: a part with no command fails here, not passes with nothing run', () => {
    for (const heading of [LOCAL, DOCKER, KUBERNETES]) expect(storySteps(markdown, heading), heading).to.not.be.empty
    const noCommand = `## Your own project, step by step\n\n${LOCAL}\n\nJust prose.\n`
    expect(() => storySteps(noCommand, LOCAL)).to.throw('has no `$ ` step')
    expect(() => consoleBlocks('```console\n```\n', 'x.md')).to.throw('a console block with no `$ ` command')
  })
})

describe('README.md: the by-hand story runs as written (output compared, ids and figures aside)', function () {
  this.timeout(120_000)
  const markdown = readFileSync(README, 'utf8')
  // The folder the story starts in, shown as ~ in the README.
  let home = ''
  let cwd = ''
  let broken: string | undefined
  const env: Record<string, string> = {CI: 'true'}
  let saved: [string, string | undefined][] = []

  before(() => {
    // The README's story in a clean environment: no MLOPS_* setting of this shell or of other tests.
    saved = Object.entries(process.env).filter(([key]) => key.startsWith('MLOPS_') || key === 'STORAGE_EMULATOR_HOST')
    for (const [key] of saved) delete process.env[key]
    home = mkdtempSync(join(tmpdir(), 'mlops-readme-'))
    cwd = home
  })

  after(async () => {
    // A run stopped midway leaves nothing running.
    if (cwd !== home) {
      await runCli(['delete'], env, cwd, {timeoutMs: 30_000})
      if (env.DOCKER_HOST) await runCli(['delete', '--target', 'docker'], env, cwd, {timeoutMs: 30_000})
    }

    if (home) rmSync(home, {recursive: true, force: true})
    for (const [key, value] of saved) restoreEnv(key, value)
  })

  function steps(heading: string): void {
    for (const step of storySteps(markdown, heading))
      it(`$ ${step.line}`, async function () {
        // A step after a failed one fails too (never a silent skip), naming the step that broke the story.
        if (broken) throw new Error(`not run: the README's story broke at $ ${broken}`)
        broken = step.line
        const argv = shellWords(step.line)
        if (argv[0] === 'cd') {
          expect(argv, 'cd takes one folder').to.have.length(2)
          cwd = join(cwd, argv[1])
        } else {
          expect(argv[0], "the README's story runs only mlops and cd").to.equal('mlops')
          const run = await runCli(argv.slice(1), env, cwd, {timeoutMs: 60_000})
          const output = (run.stdout + run.stderr).replaceAll(home, '~')
          expect(run.code, `exit code of: mlops ${argv.slice(1).join(' ')}\n${output}`).to.equal(0)
          // The command worked, so the next ones can run, whatever its output says.
          broken = undefined
          expect(normalise(output).join('\n'), `the output README.md shows for $ ${step.line}`).to.equal(
            normalise(step.expected.join('\n')).join('\n'),
          )
        }

        broken = undefined
      })
  }

  describe(LOCAL.slice(4), () => {
    steps(LOCAL)
  })

  describe(DOCKER.slice(4), () => {
    before(() => {
      // The test environment provides the engine (as for every docker test): no engine is a failure, not a skip.
      const engine = dockerEngine()
      env.DOCKER_HOST = engine.dockerHost
      // The suite's stand-in for node:20-slim, as the README says to name one (MLOPS_BASE_IMAGE).
      env.MLOPS_BASE_IMAGE = engine.baseImage
    })
    steps(DOCKER)
  })
})
