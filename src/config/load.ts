import type {ErrorObject} from 'ajv'
import {existsSync, readFileSync, statSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {LineCounter, parseDocument} from 'yaml'

import {ConfigError} from '../errors.js'
import {DEPLOY_DEFAULTS, type DeployConfig, mergeDeployConfig, readValuesFile} from './deploy.js'
import type {MlopsYaml} from './mlops-yaml.js'
import validateSchema from './schema-validator.js'
import {closestMatch} from '../util/text.js'

export const CONFIG_FILE_NAME = 'mlops.yaml'

/** mlops.yaml as validated against schemas/mlops.schema.json (the type is generated from the schema). */
export type {MlopsYaml} from './mlops-yaml.js'
export type StoreYaml = Exclude<NonNullable<MlopsYaml['store']>, string>

export interface ProjectConfig {
  /** Absolute path of the mlops.yaml that was loaded, if any. */
  file?: string
  /** The project folder: where mlops.yaml is, or the current folder without one. */
  dir: string
  values: MlopsYaml
}

function validate(values: unknown): ErrorObject[] {
  return validateSchema(values) ? [] : [...(validateSchema.errors ?? [])]
}

/** mlops.yaml in `cwd` or the nearest parent folder. */
export function findConfigFile(cwd: string): string | undefined {
  let dir = resolve(cwd)
  for (;;) {
    const candidate = join(dir, CONFIG_FILE_NAME)
    if (existsSync(candidate)) return candidate
    const parent = dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}

export function loadConfig(options: {cwd: string; configPath?: string}): ProjectConfig {
  const file = options.configPath ? resolve(options.cwd, options.configPath) : findConfigFile(options.cwd)
  if (!file) return {dir: resolve(options.cwd), values: {}}
  if (!existsSync(file)) {
    throw new ConfigError(`config file ${options.configPath} does not exist`, {
      suggestion: 'check --config / MLOPS_CONFIG, or run without it to use the mlops.yaml found from the current folder',
    })
  }

  if (statSync(file).isDirectory()) throw new ConfigError(`config file ${options.configPath} is a directory`)
  return {dir: dirname(file), file, values: parseConfig(readFileSync(file, 'utf8'), file)}
}

/** Parses and validates mlops.yaml text; errors name the file, line, field and what was expected. */
export function parseConfig(text: string, file: string): MlopsYaml {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, {lineCounter, prettyErrors: false, uniqueKeys: true})
  if (doc.errors.length > 0) {
    const error = doc.errors[0]
    const {line, col} = lineCounter.linePos(error.pos[0])
    throw new ConfigError(`${file}:${line}:${col}: invalid YAML: ${firstLine(error.message)}`)
  }

  const values = doc.toJS() ?? {}
  const errors = validate(values)
  if (errors.length === 0) return values as MlopsYaml

  const error = pickError(errors)
  const path = pathOf(error)
  const node = doc.getIn(path.length > 0 ? path : [], true) as {range?: [number, number]} | undefined
  const offset = error.keyword === 'additionalProperties' ? keyOffset(doc, path, error) : node?.range?.[0]
  const where = offset === undefined ? file : `${file}:${lineCounter.linePos(offset).line}:${lineCounter.linePos(offset).col}`
  throw new ConfigError(`${where}: ${describe(error, values, errors)}`, {suggestion: suggestionFor(error)})
}

/**
 * The deploy values of one release: mlops.yaml's deploy section, then each -f file, then each
 * --set, validated. Pure input checks: a release runs them before it asks a store or a cluster anything.
 */
export function deployValues(project: ProjectConfig, input: {valuesFiles: string[]; sets: string[]}): DeployConfig {
  const files = input.valuesFiles.map(path => readValuesFile(path))
  const deploy = mergeDeployConfig(project.values.deploy, files, input.sets)
  const given = input.valuesFiles.length > 0 || input.sets.length > 0
  validateDeployValues(deploy, given ? 'deploy values (mlops.yaml, then -f files, then --set)' : (project.file ?? CONFIG_FILE_NAME))
  return deploy
}

/**
 * The deploy values after -f files and --set are merged in: checked against
 * the same schema as mlops.yaml, with the same messages, before anything is
 * rendered (a --set replicas=abc must not reach the API server, or pass
 * --dry-run=client). Also the rules a schema cannot state.
 */
export function validateDeployValues(deploy: unknown, origin: string): void {
  const values = {deploy}
  const errors = validate(values)
  if (errors.length > 0) {
    const error = pickError(errors)
    throw new ConfigError(`${origin}: ${describe(error, values, errors)}`, {
      suggestion: suggestionFor(error) ?? 'see the deploy keys in docs/configuration.md',
    })
  }

  const scaling = (deploy as {autoscaling?: false | {minReplicas?: number; maxReplicas?: number}}).autoscaling
  if (scaling) {
    // One side may be the default: minReplicas 20 alone is above the default maxReplicas.
    const min = scaling.minReplicas ?? DEPLOY_DEFAULTS.autoscaling.minReplicas
    const max = scaling.maxReplicas ?? DEPLOY_DEFAULTS.autoscaling.maxReplicas
    const which = (value: number | undefined) => (value === undefined ? ' (the default)' : '')
    if (min > max)
      throw new ConfigError(
        `${origin}: deploy.autoscaling.minReplicas (${min}${which(scaling.minReplicas)}) is above maxReplicas (${max}${which(scaling.maxReplicas)})`,
        {
          suggestion:
            scaling.minReplicas === undefined || scaling.maxReplicas === undefined ? 'set both minReplicas and maxReplicas' : undefined,
        },
      )
  }
}

function firstLine(text: string): string {
  return text.split('\n')[0]
}

function pathOf(error: ErrorObject): Array<number | string> {
  return error.instancePath
    .split('/')
    .slice(1)
    .map(part => part.replaceAll('~1', '/').replaceAll('~0', '~'))
}

function fieldName(error: ErrorObject): string {
  const path = pathOf(error).join('.')
  return path || '(top level)'
}

/**
 * ajv reports every branch of a oneOf. The error a person needs is the
 * deepest one, and at equal depth one from the branch whose type matched
 * (an unknown key in the object form beats "expected string").
 */
function pickError(errors: ErrorObject[]): ErrorObject {
  const concrete = errors.filter(e => e.keyword !== 'oneOf')
  const candidates = concrete.length > 0 ? concrete : errors
  const rank = (e: ErrorObject) => e.instancePath.split('/').length * 2 + (e.keyword === 'type' ? 0 : 1)
  return candidates.reduce((best, e) => (rank(e) > rank(best) ? e : best))
}

function keyOffset(doc: ReturnType<typeof parseDocument>, path: Array<number | string>, error: ErrorObject): number | undefined {
  const parent = doc.getIn(path, true) as {items?: Array<{key?: {value?: unknown; range?: [number, number]}}>} | undefined
  const key = (error.params as {additionalProperty: string}).additionalProperty
  return parent?.items?.find(item => item.key?.value === key)?.key?.range?.[0]
}

function describe(error: ErrorObject, values: unknown, all: ErrorObject[]): string {
  const field = fieldName(error)
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = (error.params as {additionalProperty: string}).additionalProperty
      const where = field === '(top level)' ? '' : ` in ${field}`
      return `unknown key "${key}"${where}`
    }

    case 'type': {
      const sameField = all.filter(e => e.keyword === 'type' && e.instancePath === error.instancePath)
      const expected = [...new Set(sameField.map(e => (e.params as {type: string}).type))].join(' or ')
      return `${field}: expected ${expected}, got ${describeValue(valueAt(values, pathOf(error)))}`
    }

    case 'pattern': {
      const wanted =
        EXPECTED_FORMS.find(([path]) => path.test(field))?.[1] ?? `something matching ${(error.params as {pattern: string}).pattern}`
      return `${field}: ${describeValue(valueAt(values, pathOf(error)))} is not ${wanted}`
    }

    default: {
      return `${field}: ${error.message}`
    }
  }
}

/** What a value of a patterned field looks like, in words (the schema's regular expressions help nobody). */
const EXPECTED_FORMS: Array<[RegExp, string]> = [
  [/^deploy\.resources\.\w+\.(cpu|memory|ephemeral-storage)$/, 'a Kubernetes quantity such as 500m, 2 or 1Gi'],
  [/^store(\.uri)?$/, 'gs://BUCKET[/PREFIX], file:///absolute/path or a folder'],
  [/^image\.repository$/, 'an image repository in lower case, such as registry.example.com/team/iris'],
  [/^image\.tag$/, 'an image tag (letters, digits, _ . -, up to 128)'],
  [/^deploy\.(name|namespace)$/, 'a Kubernetes name (lower-case letters, digits and -, up to 63)'],
  [/^deploy\.imagePullSecrets\.\d+$/, 'a Secret name (lower-case letters, digits, - and .)'],
  [/^store\.endpoint$/, 'an http:// or https:// URL'],
  [/^deploy\.modelImage$/, 'REGISTRY/REPOSITORY, such as registry.example.com/team/iris-model'],
  [/^(name|model\.name)$/, 'a name of 1-64 characters from A-Z a-z 0-9 . _ -, not starting with "."'],
]

function suggestionFor(error: ErrorObject): string | undefined {
  if (error.keyword !== 'additionalProperties') return undefined
  const key = (error.params as {additionalProperty: string}).additionalProperty
  const allowed = Object.keys((error.parentSchema as {properties?: object}).properties ?? {})
  const close = closestMatch(key, allowed)
  return close ? `did you mean "${close}"? Allowed keys: ${allowed.join(', ')}` : `allowed keys: ${allowed.join(', ')}`
}

function valueAt(values: unknown, path: Array<number | string>): unknown {
  let current = values
  for (const part of path) current = (current as Record<string, unknown>)?.[part]
  return current
}

function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'a mapping'
  return `${typeof value} ${JSON.stringify(value)}`
}
