import {existsSync, readFileSync, readdirSync} from 'node:fs'
import {join} from 'node:path'
import {parseAllDocuments, stringify} from 'yaml'

import {UsageError} from '../errors.js'
import {packagePath} from '../util/package-root.js'
import type {ManifestValues} from './values.js'

export const BUILT_IN_TEMPLATES = packagePath('templates', 'manifests')

export interface KubernetesObject {
  apiVersion: string
  kind: string
  metadata: {name: string; namespace?: string; [key: string]: unknown}
  [key: string]: unknown
}

export interface RenderedFile {
  template: string
  objects: KubernetesObject[]
}

const PLACEHOLDER = /\{\{\s*([A-Za-z0-9_.]+)\s*\}\}/g
const WHEN = /^#\s*mlops:when\s+([A-Za-z0-9_.]+)\s*$/m

/**
 * Renders every *.yaml template of the folders (a later folder overrides an
 * earlier one file by file: a project's manifests/ over the built-in ones). A placeholder `{{ path }}` is
 * replaced by the value as JSON, which is valid YAML whatever the value (a
 * string with a colon, a list, a map), so values can never break the YAML
 * around them or inject keys; a key whose value renders as null is left out
 * (an optional field such as nodeSelector); `# mlops:when path` skips a file
 * when the value is false or empty. The result is parsed with the `yaml` library and checked
 * to be Kubernetes objects.
 */
export function renderManifests(values: object, dirs: string[]): RenderedFile[] {
  const files = new Map<string, string>()
  for (const dir of dirs) {
    if (!existsSync(dir)) continue
    for (const name of readdirSync(dir)
      .filter(n => n.endsWith('.yaml') || n.endsWith('.yml'))
      .sort())
      files.set(name, join(dir, name))
  }

  const rendered: RenderedFile[] = []
  for (const [name, path] of [...files].sort(([a], [b]) => order(a) - order(b) || a.localeCompare(b))) {
    const text = readFileSync(path, 'utf8')
    const when = WHEN.exec(text)?.[1]
    if (when && !truthy(lookup(values, when, name))) continue
    const substituted = text.replaceAll(PLACEHOLDER, (_, key: string) => JSON.stringify(lookup(values, key, name)))
    const objects: KubernetesObject[] = []
    for (const doc of parseAllDocuments(substituted)) {
      if (doc.errors.length > 0)
        throw new UsageError(`template ${path}: invalid YAML after rendering: ${doc.errors[0].message.split('\n')[0]}`)
      const object = withoutNulls(doc.toJS()) as KubernetesObject | null
      if (!object) continue
      if (!object.apiVersion || !object.kind || !object.metadata?.name)
        throw new UsageError(`template ${path}: a document without apiVersion, kind and metadata.name`)
      objects.push(object)
    }

    rendered.push({template: name, objects})
  }

  return rendered
}

function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(item => withoutNulls(item))
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, item]) => item !== null)
      .map(([key, item]) => [key, withoutNulls(item)]),
  )
}

/** Namespaces and service accounts before what uses them. */
function order(name: string): number {
  return name.startsWith('namespace') ? 0 : name.startsWith('serviceaccount') ? 1 : 2
}

function lookup(values: object, path: string, template: string): unknown {
  let current: unknown = values
  for (const key of path.split('.')) {
    if (current === null || typeof current !== 'object' || !(key in current)) {
      throw new UsageError(`template ${template}: unknown value {{ ${path} }}`, {
        suggestion: 'see the values templates may use in src/manifests/values.ts (ManifestValues) and docs/kubernetes.md',
      })
    }

    current = (current as Record<string, unknown>)[key]
  }

  return current
}

function truthy(value: unknown): boolean {
  return value !== false && value !== null && value !== undefined && value !== '' && !(Array.isArray(value) && value.length === 0)
}

export interface RenderResult {
  files: RenderedFile[]
  objects: KubernetesObject[]
  values: ManifestValues
}

/**
 * A project's manifests for these values: the built-in templates, each overridable by a file of
 * the same name in the project's manifests/ folder. With an autoscaler the replica count is the
 * autoscaler's: the Deployment is rendered without one, since applying it would fight the HPA.
 */
export function renderProjectManifests(values: ManifestValues, projectDir: string): RenderResult {
  const files = renderManifests(values, [BUILT_IN_TEMPLATES, join(projectDir, 'manifests')])
  const objects = files.flatMap(file => file.objects)
  if (values.deploy.autoscaling !== false)
    for (const object of objects) if (object.kind === 'Deployment') delete (object.spec as {replicas?: number}).replicas
  return {files, objects, values}
}

/** Rendered objects as one multi-document YAML stream, the way kubectl apply -f reads it; no anchors, so each object reads on its own. */
export function toYaml(files: RenderedFile[]): string {
  return files
    .flatMap(file => file.objects.map(object => `# Source: ${file.template}\n${stringify(object, {aliasDuplicateObjects: false})}`))
    .join('---\n')
}
