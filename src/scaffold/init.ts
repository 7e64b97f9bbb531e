import {basename} from 'node:path'

import {DEPLOY_DEFAULTS} from '../config/deploy.js'
import {UsageError} from '../errors.js'
import {defaultImageRepository} from '../images/names.js'
import {DEFAULT_LOCAL_STORE} from '../store/defaults.js'
import {validateName} from '../store/names.js'
import {CI_SYSTEMS} from './ci.js'
import {type ProjectAnswers, STRATEGIES, scaffoldProject} from './project.js'

/** --ci's choices: a CI system, or none. */
export const CI_CHOICES = [...CI_SYSTEMS, 'none'] as const

/** What a new project starts with when neither a flag nor a prompt says otherwise: the product's own defaults. */
export const INIT_DEFAULTS = {
  store: DEFAULT_LOCAL_STORE,
  replicas: DEPLOY_DEFAULTS.replicas,
  cpu: DEPLOY_DEFAULTS.resources.requests.cpu,
  memory: DEPLOY_DEFAULTS.resources.limits.memory,
  strategy: 'all-at-once',
  sampleModel: true,
  manifests: false,
  ci: 'none',
} as const

const DNS_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/

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

/** Each setting in the order asked: its flag, its prompt, its default (which may follow from earlier answers) and its rule. */
function questions(dir: string): Array<Question<keyof ProjectAnswers>> {
  return [
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
    {key: 'store', flag: '--store', message: 'Model store (gs://BUCKET[/PREFIX] or a folder)', fallback: () => INIT_DEFAULTS.store},
    {key: 'imageRepository', flag: '--image-repository', message: 'Image repository', fallback: a => defaultImageRepository(a.name)},
    {
      key: 'namespace',
      flag: '--namespace',
      message: 'Kubernetes namespace',
      fallback: a => a.name!,
      validate: v => DNS_NAME.test(String(v)) || 'lowercase letters, digits and -',
    },
    {key: 'replicas', flag: '--replicas', message: 'Replicas', fallback: () => INIT_DEFAULTS.replicas},
    {key: 'cpu', flag: '--cpu', message: 'CPU request per pod', fallback: () => INIT_DEFAULTS.cpu},
    {key: 'memory', flag: '--memory', message: 'Memory per pod', fallback: () => INIT_DEFAULTS.memory},
    {
      key: 'strategy',
      flag: '--strategy',
      message: 'Release strategy on Kubernetes (a plain mlops deploy)',
      fallback: () => INIT_DEFAULTS.strategy,
      choices: STRATEGIES,
      optional: true,
    },
    {key: 'sampleModel', flag: '--sample-model', message: 'Include the sample iris model?', fallback: () => INIT_DEFAULTS.sampleModel},
    {
      key: 'manifests',
      flag: '--manifests',
      message: 'Copy the manifest templates into manifests/?',
      fallback: () => INIT_DEFAULTS.manifests,
    },
    {key: 'ci', flag: '--ci', message: 'Release workflow for CI', fallback: () => INIT_DEFAULTS.ci, choices: CI_CHOICES, optional: true},
  ]
}

export interface InitResult {
  dir: string
  files: string[]
  answers: ProjectAnswers
}

/**
 * mlops init: each setting from its flag, else a prompt (only when `interactive`), else its
 * default under --yes; without a terminal, a setting with neither is a usage error naming the
 * flag. Then the project's files, refusing to overwrite unless `force`.
 */
export async function initProject(
  dir: string,
  given: Partial<ProjectAnswers>,
  options: {interactive: boolean; yes: boolean; force: boolean},
): Promise<InitResult> {
  const answers: Partial<ProjectAnswers> = {}
  for (const question of questions(dir)) {
    let value = given[question.key]
    if (value === undefined && options.interactive) value = await ask(question, question.fallback(answers))
    if (value === undefined && !options.yes && !question.optional) {
      throw new UsageError(`missing ${question.flag}: there is no terminal to ask (${question.message.toLowerCase()})`, {
        suggestion: `pass ${question.flag}, or --yes for the defaults`,
      })
    }

    value ??= question.fallback(answers)
    const valid = question.validate?.(value) ?? true
    if (valid !== true) throw new UsageError(`invalid ${question.flag} "${String(value)}": ${valid}`)
    ;(answers as Record<string, unknown>)[question.key] = value
  }

  const files = await scaffoldProject(dir, answers as ProjectAnswers, {force: options.force})
  return {dir, files, answers: answers as ProjectAnswers}
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
