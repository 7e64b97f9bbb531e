import {mkdir, readFile, readdir, stat} from 'node:fs/promises'
import {dirname, join, relative} from 'node:path'
import {stringify} from 'yaml'

import {parseConfig} from '../config/load.js'
import {ConfigError, ConflictError, UsageError} from '../errors.js'
import {writeFileAtomic} from '../util/fs-atomic.js'
import {packagePath} from '../util/package-root.js'
import {type CiSystem, ciWorkflow} from './ci.js'

const TEMPLATES = packagePath('templates')

/** deploy.strategy's values (schemas/mlops.schema.json), the first the default. */
export const STRATEGIES = ['all-at-once', 'canary', 'shadow'] as const

export interface ProjectAnswers {
  name: string
  modelName: string
  store: string
  imageRepository: string
  namespace: string
  replicas: number
  cpu: string
  memory: string
  /** deploy.strategy: how a plain mlops deploy to Kubernetes rolls out (all-at-once is the default and is not written). */
  strategy: (typeof STRATEGIES)[number]
  sampleModel: boolean
  manifests: boolean
  /** The CI system to write a release workflow for (templates/ci/), or none. */
  ci: CiSystem | 'none'
}

/** The files a new project gets, as path → content (or a template file to copy). */
function plan(answers: ProjectAnswers): Array<{path: string; content?: string; copyFrom?: string}> {
  const config = {
    name: answers.name,
    model: {name: answers.modelName},
    store: answers.store,
    image: {repository: answers.imageRepository},
    deploy: {
      namespace: answers.namespace,
      replicas: answers.replicas,
      autoscaling: false,
      resources: {requests: {cpu: answers.cpu, memory: answers.memory}, limits: {memory: answers.memory}},
      ...(answers.strategy === 'all-at-once' ? {} : {strategy: answers.strategy}),
    },
  }
  const files: Array<{path: string; content?: string; copyFrom?: string}> = [
    {path: 'mlops.yaml', content: `# mlops project: every key is in mlops' docs/configuration.md.\n${stringify(config)}`},
    {path: '.gitignore', content: '.mlops/\n'},
    {path: 'README.md', content: readme(answers)},
    // The images' Dockerfiles, to customise (mlops image build uses these over the packaged ones).
    {path: 'docker/loader.Dockerfile', copyFrom: join(TEMPLATES, 'images', 'loader.Dockerfile')},
    {path: 'docker/api.Dockerfile', copyFrom: join(TEMPLATES, 'images', 'api.Dockerfile')},
  ]
  if (answers.sampleModel) {
    files.push(
      {path: 'model/model.onnx', copyFrom: join(TEMPLATES, 'sample-model', 'iris_svc.onnx')},
      {path: 'model/labels.json', copyFrom: join(TEMPLATES, 'sample-model', 'labels.json')},
      {path: 'model/reference.csv', copyFrom: join(TEMPLATES, 'sample-model', 'reference.csv')},
    )
  }

  if (answers.ci !== 'none') files.push(ciWorkflow(answers.ci, answers))
  return files
}

/**
 * Writes a new model-load project. Every target is checked first: when any
 * exists and force is off, nothing is written (exit 4 naming them). Files go
 * through a temporary file and a rename.
 */
export async function scaffoldProject(dir: string, answers: ProjectAnswers, options: {force: boolean}): Promise<string[]> {
  const files = plan(answers)
  // The settings go through the same validation every later command applies: init never writes a
  // mlops.yaml that they would all reject (--store s3://..., --memory lots).
  const config = files.find(file => file.path === 'mlops.yaml')!.content!
  try {
    parseConfig(config, 'mlops.yaml')
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    throw new UsageError(`${error.message.replace(/^mlops\.yaml:\d+:\d+: /, '')}; nothing was written`, {
      suggestion: 'see mlops init --help for each setting',
    })
  }

  // A CI runner and the pods read the store over the network: a folder on this machine is neither.
  if (answers.ci !== 'none' && !answers.store.startsWith('gs://')) {
    throw new UsageError(`--ci ${answers.ci} needs a gs:// store, not ${answers.store}; nothing was written`, {
      suggestion: 'pass --store gs://BUCKET[/PREFIX]',
    })
  }

  if (answers.manifests) {
    const templates = join(TEMPLATES, 'manifests')
    for (const name of (await readdir(templates)).sort()) files.push({path: `manifests/${name}`, copyFrom: join(templates, name)})
  }

  if (!options.force) {
    const existing: string[] = []
    for (const file of files)
      if (
        await stat(join(dir, file.path)).then(
          () => true,
          () => false,
        )
      )
        existing.push(file.path)
    if (existing.length > 0) {
      throw new ConflictError(`${relative(process.cwd(), dir) || '.'} already has ${existing.join(', ')}; nothing was written`, {
        suggestion: 'pass --force to overwrite them, or choose another folder',
      })
    }
  }

  for (const file of files) {
    const target = join(dir, file.path)
    await mkdir(dirname(target), {recursive: true})
    const content = file.copyFrom ? await readFile(file.copyFrom) : file.content!
    await writeFileAtomic(target, async handle => {
      await handle.writeFile(content)
    })
  }

  return files.map(file => file.path)
}

function readme(answers: ProjectAnswers): string {
  return `# ${answers.name}

A model-load project: a generic API image serves the model that a loader
initContainer pulls from ${answers.store} at pod start.

\`\`\`sh
mlops model push ${answers.sampleModel ? 'model/model.onnx --labels model/labels.json --reference model/reference.csv' : 'MODEL.onnx'} --name ${answers.modelName}
mlops image build && mlops image push
mlops deploy --model ${answers.modelName}@latest
mlops status
\`\`\`
`
}
