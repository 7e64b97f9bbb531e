import {expect} from 'chai'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {dockerEngine} from '../env/docker.js'
import {runCli} from '../helpers/cli.js'
import {restoreEnv} from '../helpers/env.js'
import {shellWords} from '../helpers/shell-words.js'

/**
 * The README's by-hand story ("Your own project, step by step"), run as written: every
 * `$ mlops ...` line of its ```console blocks with the real CLI, in order, in a fresh
 * folder, and each command's output compared with the lines the README shows under it.
 * What differs from run to run (ports, pids, ids, paths, times, sizes, sha256 prefixes,
 * latency figures) is normalised on both sides; anything else that differs is drift.
 */

const README = join(import.meta.dirname, '..', '..', 'README.md')
const STORY = '## Your own project, step by step'
/** The parts this test runs; the Kubernetes part is proven by `npm run e2e`. */
const LOCAL = '### 1. On this machine'
const DOCKER = '### 2. In Docker'

interface StoryStep {
  /** The command line as the README shows it, without its prompt and comment. */
  line: string
  argv: string[]
  expected: string[]
}

/** The ```console blocks under a `###` heading of the story section, as steps. */
function storySteps(markdown: string, heading: string): StoryStep[] {
  const story = markdown.slice(markdown.indexOf(STORY))
  const sectionEnd = story.indexOf('\n## ', STORY.length)
  const section = sectionEnd === -1 ? story : story.slice(0, sectionEnd)
  const start = section.indexOf(`\n${heading}\n`)
  if (start === -1) throw new Error(`README.md: no "${heading}" under "${STORY}"`)
  const next = section.indexOf('\n### ', start + 1)
  const part = section.slice(start, next === -1 ? undefined : next)
  const steps: StoryStep[] = []
  for (const block of part.matchAll(/^```console\n([\s\S]*?)^```$/gm))
    for (const line of block[1].split('\n')) {
      if (line.startsWith('$ ')) {
        const command = line.slice(2).replace(/\s+#.*$/, '')
        steps.push({line: command, argv: shellWords(command), expected: []})
      } else if (line !== '' || steps.length > 0) {
        if (steps.length === 0) throw new Error(`README.md: output before any command in "${heading}": ${line}`)
        steps.at(-1)!.expected.push(line)
      }
    }

  return steps
}

/** What may differ between the README and a run, replaced by a placeholder on both sides. */
function normalise(text: string): string[] {
  return text
    .split('\n')
    .map(line =>
      line
        .replaceAll(/\b[0-9a-f]{64}\b/g, '<sha256>')
        .replaceAll(/\b[0-9a-f]{12}\b/g, '<sha>')
        .replaceAll(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>')
        .replaceAll(/\bpid \d+/g, 'pid <pid>')
        .replaceAll(/workdir-[a-z0-9]+-\d+/g, 'workdir-<id>')
        .replaceAll(/\b(mlops-[a-z0-9-]*?-\d+)-[a-z0-9]{8}\b/g, '$1-<id>')
        .replaceAll(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>')
        .replaceAll(/\b\d+(\.\d+)? ms\b/g, '<ms>')
        .replaceAll(/\b\d+(\.\d+)?s\b/g, '<seconds>')
        .replaceAll(/\b\d+(\.\d+)? (B|KiB|MiB|GiB)\b/g, '<size>')
        .replaceAll(/ by \S+@\S+/g, ' by <user>')
        .replaceAll(/\s+/g, ' ')
        .trim()
        // The load figures' row: requests and errors are the README's, requests/s are this machine's.
        .replace(/^(\d+) (\d+) \d+ <ms>/, '$1 $2 <rps> <ms>'),
    )
    .filter((line, i, lines) => line !== '' || i < lines.length - 1)
}

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
        // A command that failed leaves the next ones without what they need: they are skipped.
        if (broken) this.skip()
        broken = step.line
        if (step.argv[0] === 'cd') {
          expect(step.argv, 'cd takes one folder').to.have.length(2)
          cwd = join(cwd, step.argv[1])
        } else {
          expect(step.argv[0], "the README's story runs only mlops and cd").to.equal('mlops')
          const run = await runCli(step.argv.slice(1), env, cwd, {timeoutMs: 60_000})
          const output = (run.stdout + run.stderr).replaceAll(home, '~')
          expect(run.code, `exit code of: mlops ${step.argv.slice(1).join(' ')}\n${output}`).to.equal(0)
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

  describe(DOCKER.slice(4), function () {
    before(function () {
      try {
        const engine = dockerEngine()
        env.DOCKER_HOST = engine.dockerHost
        // The suite's stand-in for node:20-slim, as the README says to name one (MLOPS_BASE_IMAGE).
        env.MLOPS_BASE_IMAGE = engine.baseImage
      } catch {
        this.skip()
      }
    })
    steps(DOCKER)
  })
})
