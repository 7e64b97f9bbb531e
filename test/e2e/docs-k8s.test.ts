import {expect} from 'chai'
import {copyFileSync, readFileSync} from 'node:fs'
import {join} from 'node:path'

import {waitFor} from '../env/ports.js'
import {KUBERNETES, README, REAL_NODE_BLOCKS, type StoryStep, docBlock, normalise, readDoc, storySteps} from '../helpers/readme.js'
import {shellWords} from '../helpers/shell-words.js'
import {fixture} from '../helpers/stores.js'
import {clientsFor, podsOf} from './cluster.js'
import {type RealNodeProject, realNodeProject} from './environment.js'

/**
 * The documented Kubernetes story run as written on the real node, in one project: the README's
 * part 3 ("On Kubernetes"), then the docs' blocks that need pods (REAL_NODE_BLOCKS: predict.md's
 * `--target k8s`, then the whole block of kubernetes.md). The project is as `mlops init` makes
 * it (two replicas) with the store, registry and node settings part 3 describes (here: the GCS
 * emulator, the local registry with basic auth, the real node). Every `$ mlops ...` line runs in
 * order and its output is compared with the doc's, ids, buckets, pods and times aside.
 */

/** The image repository the README's part 3 puts in mlops.yaml, shown by `mlops status` where this run has the test registry's. */
const DOC_REPOSITORY = 'europe-docker.pkg.dev/my-project/models/iris'

/** What a doc's block starts from, by doc: `says` is quoted from its prose, `run` does it here before the block. */
const SETUP: Record<string, {says: string; run?: (setup: RealNodeProject) => Promise<void>}> = {
  'predict.md': {says: "The examples use the README's project deployed as in [its part 3](../README.md#3-on-kubernetes)"},
  'kubernetes.md': {
    says: '`test/fixtures/models/iris_logreg.onnx` (made by `scripts/fixtures/make_fixtures.sh`) copied to `model/`',
    // Its block starts where the README's part 3 renders and deploys: the README's deployment goes (delete keeps
    // the namespace and its pull Secret), and its pods with it, so none is a pod the block's commands could see.
    async run(setup) {
      const deleted = await setup.mlops('delete', '--yes')
      expect(deleted.code, deleted.stderr).to.equal(0)
      const {core} = clientsFor(setup.cluster.kubeconfig)
      await waitFor(async () => (await podsOf(core, 'iris', 'iris')).length === 0, "the README's pods gone", 120_000)
      copyFileSync(fixture('iris_logreg.onnx'), join(setup.project, 'model', 'iris_logreg.onnx'))
    },
  },
}

const STORIES: {title: string; doc: string; steps: StoryStep[]}[] = [
  {title: 'README.md part 3', doc: 'README.md', steps: storySteps(readFileSync(README, 'utf8'), KUBERNETES)},
  ...REAL_NODE_BLOCKS.map(({doc, first}) => ({
    title: `docs/${doc}, the block at $ ${first}`,
    doc,
    steps: docBlock(doc, first),
  })),
]

const oneLine = (text: string) => text.replaceAll(/\s+/g, ' ')

describe("README.md part 3 and the docs' Kubernetes examples run as written on a real node (output compared)", function () {
  this.timeout(10 * 60 * 1000)
  let setup: RealNodeProject
  let broken: string | undefined

  before(async function () {
    this.timeout(45 * 60 * 1000)
    // The deployment is named iris in the namespace iris, as in the docs; no model pushed yet.
    setup = await realNodeProject('iris', {pushModels: false, replicas: 'init default'})
  })

  after(async () => {
    await setup?.mlops('delete', '--yes')
    // stop() removes the namespace too: later tests on the same control plane deploy into one named iris.
    await setup?.stop()
  })

  it("the docs' prose says what their examples start from", () => {
    expect(oneLine(readFileSync(README, 'utf8')), "README.md part 3's mlops.yaml").to.contain(`\`image.repository: ${DOC_REPOSITORY}\``)
    for (const [doc, {says}] of Object.entries(SETUP)) expect(oneLine(readDoc(doc)), `docs/${doc}`).to.contain(oneLine(says))
  })

  for (const story of STORIES)
    describe(story.title, () => {
      before(async () => {
        if (!broken) await SETUP[story.doc]?.run?.(setup)
      })

      for (const step of story.steps)
        it(`$ ${step.line}`, async () => {
          // A step after a failed one fails too (never a silent skip), naming the step that broke the story.
          if (broken) throw new Error(`not run: the story broke at $ ${broken}`)
          broken = step.line
          const argv = shellWords(step.line)
          expect(argv[0], 'the story runs only mlops').to.equal('mlops')
          const run = await setup.mlops(...argv.slice(1))
          // A terminal shows predict's "forwarding" line (stderr) before the answer (stdout).
          const output = (run.stderr + run.stdout).replaceAll(`${setup.registry.address}/e2e/`, `${DOC_REPOSITORY}/`)
          expect(run.code, `exit code of: ${step.line}\n${output}`).to.equal(0)
          broken = undefined
          expect(normalise(output).join('\n'), `the output ${story.title} shows for $ ${step.line}`).to.equal(
            normalise(step.expected.join('\n')).join('\n'),
          )
        })
    })
})
