import {Args, Flags} from '@oclif/core'
import {resolve} from 'node:path'

import {BaseCommand} from '../cli/base-command.js'
import {canPrompt} from '../cli/confirm.js'
import {CI_CHOICES, INIT_DEFAULTS, type InitResult, initProject} from '../scaffold/init.js'
import {type ProjectAnswers, STRATEGIES} from '../scaffold/project.js'

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
    store: Flags.string({summary: `Model store: gs://BUCKET[/PREFIX] or a folder (default: ${INIT_DEFAULTS.store}).`}),
    'image-repository': Flags.string({summary: 'Image repository (default: mlops/<name>).'}),
    namespace: Flags.string({summary: 'Kubernetes namespace (default: the project name).'}),
    replicas: Flags.integer({summary: `Replicas (default ${INIT_DEFAULTS.replicas}).`, min: 0}),
    cpu: Flags.string({summary: `CPU request per pod (default ${INIT_DEFAULTS.cpu}).`}),
    memory: Flags.string({summary: `Memory per pod (default ${INIT_DEFAULTS.memory}).`}),
    strategy: Flags.option({
      summary:
        'deploy.strategy: how a plain mlops deploy to Kubernetes rolls out a new version: all at once, in canary steps, or after a shadow phase (default: all-at-once).',
      options: STRATEGIES,
    })(),
    'sample-model': Flags.boolean({summary: 'Include the sample iris model and labels (default: yes).', allowNo: true}),
    manifests: Flags.boolean({summary: 'Copy the manifest templates into manifests/ to customise them (default: no).', allowNo: true}),
    ci: Flags.option({
      summary:
        'Write a release workflow for this CI system (push the model, build and push the images, deploy --atomic), with keyless credentials (default: none).',
      options: CI_CHOICES,
    })(),
    yes: Flags.boolean({char: 'y', summary: 'Take the default for every setting not given by a flag.', default: false}),
    force: Flags.boolean({summary: 'Overwrite existing files.', default: false}),
  }

  async run(): Promise<InitResult> {
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
      strategy: flags.strategy,
      sampleModel: flags['sample-model'],
      manifests: flags.manifests,
      ci: flags.ci,
    }
    const interactive = !flags.yes && canPrompt({json: this.jsonEnabled()})
    const result = await initProject(dir, given, {interactive, yes: flags.yes, force: flags.force})
    this.log(`Wrote ${result.files.length} files in ${dir}:\n${result.files.map(f => `  ${f}`).join('\n')}`)
    return result
  }
}
