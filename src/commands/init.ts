import {Args, Flags} from '@oclif/core'
import {basename, resolve} from 'node:path'

import {BaseCommand} from '../cli/base-command.js'
import {UsageError} from '../errors.js'
import {CI_SYSTEMS} from '../scaffold/ci.js'
import {type ProjectAnswers, scaffoldProject} from '../scaffold/project.js'
import {validateName} from '../store/names.js'

interface Question<K extends keyof ProjectAnswers> {
  key: K
  flag: string
  message: string
  fallback: (answers: Partial<ProjectAnswers>) => ProjectAnswers[K]
  validate?: (value: ProjectAnswers[K]) => string | true
  /** A closed list: the prompt is a select of these. */
  choices?: readonly string[]
  /** An extra file rather than a setting: without a terminal it takes its fallback instead of being an error. */
  optional?: boolean
}

const CI_CHOICES = [...CI_SYSTEMS, 'none'] as const

const DNS_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/

export default class Init extends BaseCommand<typeof Init> {
  static summary = 'Scaffold a new model-load project: mlops.yaml, a README, and optionally a sample model and manifests/.'

  static description = [
    'Asks for each setting on a terminal (every prompt also has a flag); --yes takes the defaults; without a terminal it',
    'never prompts: a setting with neither a flag nor --yes is an error naming the flag (exit 2). Refuses to overwrite',
    'existing files (exit 4, nothing written) unless --force, and lists what it wrote.',
    '--ci github|gitlab|cloudbuild also writes a release workflow (.github/workflows/mlops.yml, .gitlab-ci.yml,',
    'cloudbuild.yaml) that pushes the model, builds and pushes the images and deploys with --atomic --json, with keyless',
    'credentials (Workload Identity Federation; the build service account on Cloud Build); it needs a gs:// store.',
    'The variables to set are at the top of the file. Without a terminal, --ci defaults to none.',
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %> iris-service',
    '<%= config.bin %> <%= command.id %> iris-service --yes --store gs://my-models --image-repository europe-docker.pkg.dev/my-project/models/iris',
    '<%= config.bin %> <%= command.id %> iris-service --yes --store gs://my-models --ci github',
  ]

  static args = {dir: Args.string({description: 'Folder for the project (created when missing).', default: '.'})}

  static flags = {
    name: Flags.string({summary: 'Project name (default: the folder name).'}),
    'model-name': Flags.string({summary: 'Model name in the store (default: the project name).'}),
    store: Flags.string({summary: 'Model store: gs://BUCKET[/PREFIX] or a folder (default: .mlops/store).'}),
    'image-repository': Flags.string({summary: 'Image repository (default: mlops/<name>).'}),
    namespace: Flags.string({summary: 'Kubernetes namespace (default: the project name).'}),
    replicas: Flags.integer({summary: 'Replicas (default 2).', min: 0}),
    cpu: Flags.string({summary: 'CPU request per pod (default 100m).'}),
    memory: Flags.string({summary: 'Memory per pod (default 512Mi).'}),
    'sample-model': Flags.boolean({summary: 'Include the sample iris model and labels (default: yes).', allowNo: true}),
    manifests: Flags.boolean({summary: 'Copy the manifest templates into manifests/ to customise them (default: no).', allowNo: true}),
    ci: Flags.string({
      summary:
        'Write a release workflow for this CI system (push the model, build and push the images, deploy --atomic), with keyless credentials (default: none).',
      options: [...CI_CHOICES],
    }),
    yes: Flags.boolean({char: 'y', summary: 'Take the default for every setting not given by a flag.', default: false}),
    force: Flags.boolean({summary: 'Overwrite existing files.', default: false}),
  }

  async run(): Promise<{dir: string; files: string[]; answers: ProjectAnswers}> {
    const {flags} = this
    const dir = resolve(this.args.dir)
    const given: Partial<ProjectAnswers> = {
      name: flags.name,
      modelName: flags['model-name'],
      store: flags.store,
      imageRepository: flags['image-repository'],
      namespace: flags.namespace,
      replicas: flags.replicas,
      cpu: flags.cpu,
      memory: flags.memory,
      sampleModel: flags['sample-model'],
      manifests: flags.manifests,
      ci: flags.ci as ProjectAnswers['ci'] | undefined,
    }
    const questions: Array<Question<keyof ProjectAnswers>> = [
      {
        key: 'name',
        flag: '--name',
        message: 'Project name',
        fallback: () =>
          basename(dir)
            .toLowerCase()
            .replaceAll(/[^a-z0-9-]/g, '-'),
        validate: v => DNS_NAME.test(String(v)) || 'lowercase letters, digits and -',
      },
      {key: 'modelName', flag: '--model-name', message: 'Model name', fallback: a => a.name!, validate: v => isValidName(String(v))},
      {key: 'store', flag: '--store', message: 'Model store (gs://BUCKET[/PREFIX] or a folder)', fallback: () => '.mlops/store'},
      {key: 'imageRepository', flag: '--image-repository', message: 'Image repository', fallback: a => `mlops/${a.name}`},
      {
        key: 'namespace',
        flag: '--namespace',
        message: 'Kubernetes namespace',
        fallback: a => a.name!,
        validate: v => DNS_NAME.test(String(v)) || 'lowercase letters, digits and -',
      },
      {key: 'replicas', flag: '--replicas', message: 'Replicas', fallback: () => 2},
      {key: 'cpu', flag: '--cpu', message: 'CPU request per pod', fallback: () => '100m'},
      {key: 'memory', flag: '--memory', message: 'Memory per pod', fallback: () => '512Mi'},
      {key: 'sampleModel', flag: '--sample-model', message: 'Include the sample iris model?', fallback: () => true},
      {key: 'manifests', flag: '--manifests', message: 'Copy the manifest templates into manifests/?', fallback: () => false},
      {key: 'ci', flag: '--ci', message: 'Release workflow for CI', fallback: () => 'none', choices: CI_CHOICES, optional: true},
    ]
    const interactive = !flags.yes && !this.jsonEnabled() && Boolean(process.stdin.isTTY && process.stdout.isTTY) && !process.env.CI
    const answers: Partial<ProjectAnswers> = {}
    for (const question of questions) {
      let value = given[question.key]
      if (value === undefined && interactive) value = await ask(question, question.fallback(answers))
      if (value === undefined && !flags.yes && !question.optional) {
        throw new UsageError(`missing ${question.flag}: there is no terminal to ask (${question.message.toLowerCase()})`, {
          suggestion: `pass ${question.flag}, or --yes for the defaults`,
        })
      }

      value ??= question.fallback(answers)
      const valid = question.validate?.(value) ?? true
      if (valid !== true) throw new UsageError(`invalid ${question.flag} "${String(value)}": ${valid}`)
      ;(answers as Record<string, unknown>)[question.key] = value
    }

    const files = await scaffoldProject(dir, answers as ProjectAnswers, {force: flags.force})
    this.log(`Wrote ${files.length} files in ${dir}:\n${files.map(f => `  ${f}`).join('\n')}`)
    return {dir, files, answers: answers as ProjectAnswers}
  }
}

function isValidName(value: string): string | true {
  try {
    validateName('model name', value)
    return true
  } catch (error) {
    return (error as Error).message
  }
}

/** One inquirer prompt of the right kind for the setting. */
async function ask(
  question: Question<keyof ProjectAnswers>,
  fallback: ProjectAnswers[keyof ProjectAnswers],
): Promise<ProjectAnswers[keyof ProjectAnswers]> {
  const {confirm, input, number, select} = await import('@inquirer/prompts')
  if (question.choices)
    return select({message: question.message, default: String(fallback), choices: question.choices.map(value => ({value}))})
  if (typeof fallback === 'boolean') return confirm({message: question.message, default: fallback})
  if (typeof fallback === 'number')
    return (await number({message: question.message, default: fallback, min: 0, required: true})) ?? fallback
  return input({message: question.message, default: String(fallback), validate: value => question.validate?.(value) ?? true})
}
