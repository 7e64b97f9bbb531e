import {readFileSync} from 'node:fs'
import {parse as parseYaml} from 'yaml'

import {UsageError} from '../errors.js'
import type {ProjectConfig} from './load.js'
import type {MlopsYaml} from './mlops-yaml.js'

/** The deploy section of mlops.yaml (and of -f values files, and of --set paths). */
export type DeployConfig = NonNullable<MlopsYaml['deploy']>

export const DEPLOY_DEFAULTS = {
  replicas: 2,
  port: 8000,
  resources: {requests: {cpu: '100m', memory: '256Mi'}, limits: {cpu: '1', memory: '512Mi'}},
  autoscaling: {minReplicas: 2, maxReplicas: 10, targetCPUUtilization: 70},
  pdb: {minAvailable: 1},
} as const

/** Later wins: mlops.yaml's deploy section, then each -f file, then each --set KEY=VALUE (YAML scalars). */
export function mergeDeployConfig(base: DeployConfig | undefined, files: DeployConfig[], sets: string[]): DeployConfig {
  let config = structuredClone(base ?? {}) as Record<string, unknown>
  for (const file of files) config = deepMerge(config, file)
  for (const assignment of sets) {
    const eq = assignment.indexOf('=')
    if (eq <= 0) throw new UsageError(`invalid --set "${assignment}": use KEY=VALUE, e.g. --set replicas=3`)
    const path = assignment
      .slice(0, eq)
      .trim()
      .replace(/^deploy\./, '')
      .split('.')
    if (path.some(key => key.trim() === ''))
      throw new UsageError(`invalid --set "${assignment}": a key path has an empty part`, {suggestion: 'e.g. --set resources.limits.cpu=2'})
    if (path.some(key => FORBIDDEN_KEYS.has(key)))
      throw new UsageError(`invalid --set "${assignment}": "${path.find(key => FORBIDDEN_KEYS.has(key))}" is not a deploy key`)
    let target = config
    for (const key of path.slice(0, -1)) {
      if (typeof target[key] !== 'object' || target[key] === null) target[key] = {}
      target = target[key] as Record<string, unknown>
    }

    target[path.at(-1)!] = setValue(path.join('.'), assignment.slice(eq + 1))
  }

  return config
}

/**
 * A --set VALUE: one line of YAML (a scalar, or a flow list or map), never a document. A newline
 * would let a value add keys or documents of its own; what YAML cannot parse is the user's input.
 */
function setValue(key: string, text: string): unknown {
  if (/[\r\n]/.test(text))
    throw new UsageError(`invalid --set ${key}: its value spans lines (one YAML value per --set)`, {
      suggestion: 'put a multi-line value in a values file (-f FILE)',
    })
  try {
    return parseYaml(text || '""')
  } catch {
    throw new UsageError(`invalid --set ${key}: its value is not YAML`, {
      suggestion: `quote a string, e.g. --set '${key}="..."', or put it in a values file (-f FILE)`,
    })
  }
}

/** Keys that would reach Object.prototype through a plain object: never deploy keys. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype'])

/** Merges b into a copy of a; b's values are copied too, so a later --set never writes into a -f file's objects. */
function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = {...a}
  for (const [key, value] of Object.entries(b ?? {})) {
    if (FORBIDDEN_KEYS.has(key)) continue
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && typeof out[key] === 'object' && out[key] !== null
        ? deepMerge(out[key] as Record<string, unknown>, value as Record<string, unknown>)
        : structuredClone(value)
  }

  return out
}

/** A -f values file: a YAML mapping with the deploy keys. */
export function readValuesFile(path: string): DeployConfig {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    throw new UsageError(`values file ${path} cannot be read`)
  }

  try {
    const value = parseYaml(text) as unknown
    if (value !== null && (typeof value !== 'object' || Array.isArray(value))) throw new Error('not a mapping')
    return value ?? {}
  } catch (error) {
    throw new UsageError(`values file ${path} is not a YAML mapping: ${(error as Error).message.split('\n')[0]}`)
  }
}

/**
 * The Deployment's name and namespace, the one rule for render, deploy and the
 * commands that find it again: deploy.name, else the project name, else the
 * model name; deploy.namespace, else the name.
 */
export function deploymentName(project: ProjectConfig, deploy: DeployConfig, modelName?: string): {name: string; namespace: string} {
  const name = deploy.name ?? project.values.name ?? modelName ?? project.values.model?.name
  if (!name)
    throw new UsageError('no deployment name: set name (or deploy.name) in mlops.yaml', {
      suggestion: 'run the command in the project folder, or pass --config',
    })
  return {name, namespace: deploy.namespace ?? name}
}
