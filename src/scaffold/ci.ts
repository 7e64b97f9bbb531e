import {readFileSync} from 'node:fs'

import {packagePath} from '../util/package-root.js'

/** The CI systems mlops init writes a release workflow for. */
export const CI_SYSTEMS = ['github', 'gitlab', 'cloudbuild'] as const
export type CiSystem = (typeof CI_SYSTEMS)[number]

/** Where each system reads its workflow, and the template in templates/ci/ that makes it. */
const WORKFLOWS: Record<CiSystem, {path: string; template: string}> = {
  github: {path: '.github/workflows/mlops.yml', template: 'github.yml'},
  gitlab: {path: '.gitlab-ci.yml', template: 'gitlab.yml'},
  cloudbuild: {path: 'cloudbuild.yaml', template: 'cloudbuild.yaml'},
}

export interface CiAnswers {
  name: string
  modelName: string
  store: string
  imageRepository: string
  namespace: string
}

/**
 * The release workflow for one CI system: its path in the project and its text, the template's
 * {{PLACEHOLDERS}} filled from the answers. A placeholder the answers do not fill is a defect of
 * the template, not a user's mistake: it throws rather than writing `{{...}}` into a workflow.
 * (GitHub's own expressions, `${{ vars.X }}`, are lower case with spaces and never match.)
 */
export function ciWorkflow(system: CiSystem, answers: CiAnswers): {path: string; content: string} {
  const {path, template} = WORKFLOWS[system]
  const values: Record<string, string> = {
    PROJECT_NAME: answers.name,
    MODEL_NAME: answers.modelName,
    STORE: answers.store,
    IMAGE_REPOSITORY: answers.imageRepository,
    NAMESPACE: answers.namespace,
    MLOPS_VERSION: mlopsVersion(),
  }
  const content = readFileSync(packagePath('templates', 'ci', template), 'utf8').replaceAll(/\{\{([A-Z_]+)\}\}/g, (_, key: string) => {
    if (!(key in values)) throw new Error(`templates/ci/${template}: no value for {{${key}}}`)
    return values[key]
  })
  return {path, content}
}

/** The version of this mlops package: the workflow installs the same one. */
function mlopsVersion(): string {
  return (JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as {version: string}).version
}
