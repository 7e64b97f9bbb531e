import {CoreV1Api, KubeConfig} from '@kubernetes/client-node'
import {expect} from 'chai'
import {type ChildProcess, execFileSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, readdirSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {dockerEngine, localRegistry} from '../env/docker.js'
import {kubeCluster} from '../env/k8s.js'
import {freePort, waitFor} from '../env/ports.js'
import {type Run, runCli, startCli, startProcess} from '../helpers/cli.js'
import {restoreEnv} from '../helpers/env.js'
import {apiStatus} from '../helpers/kube.js'
import {DOCS, README, REAL_NODE_BLOCKS, type StoryStep, consoleBlocks, exitCodeNames, normalise, readDoc} from '../helpers/readme.js'
import {shellWords} from '../helpers/shell-words.js'
import {fixture} from '../helpers/stores.js'

/**
 * The examples of docs/*.md, run as written: each doc's ```console blocks in order, as one
 * story in a fresh folder (the doc's `~`), after the setup its prose states. `$ mlops ...`
 * lines run the real CLI and their output is compared with the lines the doc shows under
 * them (ids, ports, times and sizes normalised, as for the README); `mlops serve` runs in the
 * background until the story ends; other lines (`cd`, `curl`, `printf ... > rows.csv`) run
 * through bash in the story's folder. A line that fails on purpose says so with a comment,
 * `# exit code 4 (conflict)`, which must match the README's exit-code table. A block that
 * needs what this suite cannot give cheaply (a real node) is listed in ELSEWHERE with the
 * test that runs its commands; any other block belongs to a story, so a new block runs.
 */

/** What this run has in place of a value the doc shows (its port, its registry, its git tag). */
interface Context {
  cwd: string
  port: number
  registry: string
}

/** How a doc says its examples start: `says` is quoted from its prose (in `doc`, default the story's), `run` does it. */
interface Setup {
  says: string
  run: (string | StoryStep)[]
  doc?: string
}

interface DocStory {
  doc: string
  setup: Setup[]
  needs?: {docker?: true; registry?: true; kubernetes?: true}
  /** The doc's values that are the reader's own, as [the doc's, this run's], replaced in command lines that show them. */
  replace?: (context: Context) => [string, () => string][]
  /** Undoes what the story left outside its folder. */
  cleanup?: () => Promise<void>
}

/** A setup step the doc shows as a command in backticks. */
const command = (line: string, after = ''): Setup => ({says: `\`${line}\`${after}`, run: [line]})

const HOME_PROJECT: Setup[] = [
  command('mlops init iris --yes', ' in your home folder'),
  {says: 'from its folder `~/iris`', run: ['cd iris']},
]
const PUSH_SAMPLE = command('mlops model push model/model.onnx --name iris --labels model/labels.json --alias prod')
const SERVE_SETUP: Setup[] = [
  ...HOME_PROJECT,
  PUSH_SAMPLE,
  command('mlops model pull iris@prod --to workdir/model.onnx --labels-to workdir/labels.json'),
]
const SERVE_PORT = (context: Context): [string, () => string][] => [
  ['127.0.0.1:8000', () => `127.0.0.1:${context.port}`],
  ['--port 8000', () => `--port ${context.port}`],
]
const DOC_REGISTRY = '127.0.0.1:5000'
/** The git tag images.md shows: the project's short sha there, this run's here. */
const DOC_TAG = '1c871b7ecf2b'

/** `mlops serve` as serve.md starts it, which predict.md's examples use. */
const serveStep = () => consoleBlocks(readDoc('serve.md'), 'serve.md')[0][0]

const STORIES: DocStory[] = [
  {doc: 'configuration.md', setup: [{says: 'From your home folder (shown as `~`)', run: []}]},
  {
    doc: 'model-store.md',
    needs: {registry: true},
    setup: [
      ...HOME_PROJECT,
      {
        says: '`test/fixtures/models/iris_logreg.onnx` (made by `scripts/fixtures/make_fixtures.sh`) copied to `model/`',
        run: [`cp '${fixture('iris_logreg.onnx')}' model/`],
      },
      {says: 'a local registry with basic auth, whose password is in `$TOKEN`', run: []},
    ],
    replace: context => [[DOC_REGISTRY, () => context.registry]],
  },
  {doc: 'serve.md', setup: SERVE_SETUP, replace: SERVE_PORT},
  {
    doc: 'predict.md',
    setup: [
      ...SERVE_SETUP.map(setup => ({...setup, doc: 'serve.md'})),
      {says: 'the server started in [serve.md](serve.md#running-it) on port 8000, from the same folder', run: [serveStep()]},
    ],
    replace: SERVE_PORT,
  },
  {
    doc: 'images.md',
    needs: {docker: true, registry: true, kubernetes: true},
    setup: [
      command(`mlops init iris --yes --image-repository ${DOC_REGISTRY}/team/iris`, ' in your home folder'),
      {says: 'from its folder `~/iris`', run: ['cd iris']},
      command('git init -q && git add -A && git commit -q -m init'),
      {says: 'here a local one with basic auth, whose password is in `$TOKEN`', run: []},
      command('mlops model push model/model.onnx --name iris --labels model/labels.json --reference model/reference.csv --alias prod'),
      {says: 'with a kubeconfig for the cluster (`KUBECONFIG`)', run: []},
    ],
    replace: context => [
      [DOC_REGISTRY, () => context.registry],
      [DOC_TAG, () => execFileSync('git', ['rev-parse', 'HEAD'], {cwd: context.cwd, encoding: 'utf8'}).slice(0, 12)],
    ],
    async cleanup() {
      // `mlops image secret` made the namespace iris; later tests deploy into a new one of that name.
      const config = new KubeConfig()
      config.loadFromFile(kubeCluster().kubeconfig)
      const core = config.makeApiClient(CoreV1Api)
      if ((await apiStatus(async () => core.readNamespace({name: 'iris'}))) === 404) return
      await core.deleteNamespace({name: 'iris'})
      await waitFor(async () => (await apiStatus(async () => core.readNamespace({name: 'iris'}))) === 404, 'namespace iris gone', 120_000)
    },
  },
]

/** Blocks not run here, by doc and first command, with the test that runs them as written instead. */
const ELSEWHERE: {doc: string; first: string; where: string}[] = REAL_NODE_BLOCKS.map(block => ({
  ...block,
  where: 'rollouts need pods that start: test/e2e/docs-k8s.test.ts runs it on the real node (npm run e2e), output compared',
}))

const elsewhere = (doc: string, block: StoryStep[]) => ELSEWHERE.find(entry => entry.doc === doc && entry.first === block[0]?.line)
const oneLine = (text: string) => text.replaceAll(/\s+/g, ' ')

describe('docs/*.md: every ```console block runs in test/docs/docs-examples.test.ts or is listed as run elsewhere', () => {
  it('each block belongs to a story here or to ELSEWHERE; no `$ ` example outside a console block', () => {
    const problems: string[] = []
    for (const doc of readdirSync(DOCS).filter(name => name.endsWith('.md'))) {
      const markdown = readDoc(doc)
      for (const block of consoleBlocks(markdown, doc))
        if (!elsewhere(doc, block) && !STORIES.some(story => story.doc === doc))
          problems.push(`${doc}: the block at $ ${block[0]?.line} is in no story and not listed as run elsewhere`)
      for (const fence of markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm))
        if (fence[1] !== 'console' && /^\$ /m.test(fence[2]))
          problems.push(`${doc}: a shell example in a \`\`\`${fence[1]} block, not \`\`\`console`)
    }

    for (const story of STORIES)
      if (consoleBlocks(readDoc(story.doc), story.doc).every(block => elsewhere(story.doc, block)))
        problems.push(`${story.doc}: a story without a block to run`)
    expect(problems).to.deep.equal([])
  })

  for (const entry of ELSEWHERE)
    it(`docs/${entry.doc}, the block at $ ${entry.first}: run elsewhere, ${entry.where}`, () => {
      const firsts = consoleBlocks(readDoc(entry.doc), entry.doc).map(block => block[0]?.line)
      expect(firsts, `the blocks of docs/${entry.doc} (ELSEWHERE names one by its first command)`).to.include(entry.first)
    })
})

describe('docs/*.md: the examples run in order as written (output compared, ids and figures aside)', function () {
  this.timeout(120_000)
  const codeNames = exitCodeNames(readFileSync(README, 'utf8'))
  const password = randomBytes(9).toString('hex')
  let registry: {address: string; stop: () => void} | undefined
  let saved: [string, string | undefined][] = []

  before(() => {
    // The docs' examples in a clean environment: no MLOPS_* setting of this shell or of other tests.
    saved = Object.entries(process.env).filter(([key]) => key.startsWith('MLOPS_') || key === 'STORAGE_EMULATOR_HOST')
    for (const [key] of saved) delete process.env[key]
  })

  after(() => {
    registry?.stop()
    for (const [key, value] of saved) restoreEnv(key, value)
  })

  for (const story of STORIES)
    describe(`docs/${story.doc}`, () => {
      const markdown = readDoc(story.doc)
      const steps = consoleBlocks(markdown, story.doc)
        .filter(block => !elsewhere(story.doc, block))
        .flat()
      let home = ''
      const context: Context = {cwd: '', port: 0, registry: ''}
      const env: Record<string, string> = {}
      const background: {line: string; child: ChildProcess; done: Promise<Run>}[] = []
      let broken: string | undefined

      const commandLine = (line: string) =>
        (story.replace?.(context) ?? []).reduce(
          (text, [shown, actual]) => (text.includes(shown) ? text.replaceAll(shown, actual()) : text),
          line,
        )

      /** Runs one line as the doc shows it and checks its exit code; returns its output, `~` for the story's folder. */
      async function run(step: StoryStep): Promise<string> {
        const line = commandLine(step.line)
        if (line.startsWith('cd ')) {
          const to = shellWords(line)
          expect(to, 'cd takes one folder').to.have.length(2)
          context.cwd = join(context.cwd, to[1])
          return ''
        }

        const words = /^(\w+=\S*\s+)*mlops\s/.test(line) ? shellWords(line, env) : undefined
        const assignments: Record<string, string> = {}
        while (words && /^[A-Za-z_]\w*=/.test(words[0])) {
          const word = words.shift()!
          assignments[word.slice(0, word.indexOf('='))] = word.slice(word.indexOf('=') + 1)
        }

        let result: Run
        if (words?.[1] === 'serve') {
          // Long-running: started here, its output taken once it has shown as many lines as the doc, stopped after the story.
          const started = startCli(words.slice(1), {...env, ...assignments}, context.cwd)
          background.push({line, ...started})
          let text = ''
          started.child.stdout!.on('data', chunk => {
            text += chunk
          })
          started.child.stderr!.on('data', chunk => {
            text += chunk
          })
          let exited: Run | undefined
          void started.done.then(done => {
            exited = done
          })
          await waitFor(async () => exited !== undefined || text.split('\n').length > step.expected.length, `the lines of: ${line}`)
          expect(exited, `mlops serve exited early: ${line}\n${text}`).to.equal(undefined)
          result = {code: 0, stdout: text, stderr: ''}
        } else if (words) {
          result = await runCli(words.slice(1), {...env, ...assignments}, context.cwd, {timeoutMs: 60_000})
        } else result = await shell(line, env, context.cwd)

        const output = (result.stdout + result.stderr).replaceAll(home, '~')
        if (step.exit) expect(codeNames.get(step.exit.code), `README.md's exit-code table for ${step.exit.code}`).to.equal(step.exit.name)
        else
          expect(step.expected.join('\n'), `the doc shows an error without "# exit code N (name)": $ ${step.line}`).to.not.match(
            /^Error: /m,
          )
        expect(result.code, `exit code of: ${line}\n${output}`).to.equal(step.exit?.code ?? 0)
        return output
      }

      before(async function () {
        this.timeout(300_000)
        home = mkdtempSync(join(tmpdir(), 'mlops-docs-'))
        context.cwd = home
        context.port = await freePort()
        // The reader's home: their own git identity, no Docker or kubeconfig of this machine's.
        Object.assign(env, {
          CI: 'true',
          HOME: home,
          GIT_AUTHOR_NAME: 'me',
          GIT_AUTHOR_EMAIL: 'me@example.com',
          GIT_COMMITTER_NAME: 'me',
          GIT_COMMITTER_EMAIL: 'me@example.com',
        })
        if (story.needs?.docker) {
          // The suite's engine and its stand-in for node:20-slim, as every image test (MLOPS_BASE_IMAGE).
          const engine = dockerEngine()
          Object.assign(env, {DOCKER_HOST: engine.dockerHost, MLOPS_BASE_IMAGE: engine.baseImage})
        }

        if (story.needs?.registry) {
          registry ??= localRegistry('ci', password)
          context.registry = registry.address
          env.TOKEN = password
        }

        if (story.needs?.kubernetes) env.KUBECONFIG = kubeCluster().kubeconfig
        for (const setup of story.setup) for (const line of setup.run) await run(typeof line === 'string' ? {line, expected: []} : line)
      })

      after(async function () {
        this.timeout(120_000)
        for (const {line, child, done} of background.splice(0)) {
          child.kill('SIGTERM')
          const {code} = await done
          expect(code, `${line} on SIGTERM`).to.equal(0)
        }

        await story.cleanup?.()
        if (home) rmSync(home, {recursive: true, force: true})
      })

      it('its prose says how its examples start', () => {
        for (const setup of story.setup)
          expect(oneLine(setup.doc ? readDoc(setup.doc) : markdown), `docs/${setup.doc ?? story.doc}`).to.contain(oneLine(setup.says))
      })

      for (const step of steps)
        it(`$ ${step.line}`, async () => {
          // A step after a failed one fails too (never a silent skip), naming the step that broke the story.
          if (broken) throw new Error(`not run: the story of docs/${story.doc} broke at $ ${broken}`)
          broken = step.line
          const output = await run(step)
          // The command did what the doc says it does, so the next ones can run, whatever its output says.
          broken = undefined
          expect(normalise(output).join('\n'), `the output docs/${story.doc} shows for $ ${step.line}`).to.equal(
            normalise(step.expected.join('\n')).join('\n'),
          )
        })
    })
})

/** A line the docs show for a shell (`curl`, `printf ... > file`), run by bash in the story's folder. */
async function shell(line: string, env: Record<string, string>, cwd: string): Promise<Run> {
  return startProcess('bash', ['-c', line], env, cwd, {timeoutMs: 60_000}).done
}
