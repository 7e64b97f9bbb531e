import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import type {ProjectConfig} from '../config/load.js'
import {PACKAGE_ROOT} from '../util/package-root.js'
import {gitState} from '../util/git.js'

export type Component = 'api' | 'loader'

/**
 * The mlops package itself: the images run this CLI, so it is their build
 * context. Re-exported here, not in build.ts, so that naming images (render,
 * deploy) does not load the Docker client.
 */
export {PACKAGE_ROOT} from '../util/package-root.js'

export const COMPONENTS: Component[] = ['loader', 'api']

export function componentsOf(argument: string): Component[] {
  return argument === 'all' ? COMPONENTS : [argument as Component]
}

/**
 * <repository>/<component>:<tag>. Repository: flag, image.repository, else
 * mlops/<project name>. Tag: flag, image.tag, else the project's git short
 * sha (-dirty with uncommitted changes), else the mlops version. Git is asked
 * only when the tag comes from it or the caller wants the `revision` (a build's label).
 */
export interface ImageNames {
  repository: string
  tag: string
  /** The project's git commit, when asked for. */
  revision?: string
  /** This mlops package's version. */
  version: string
  ref: (component: Component) => string
}

export async function imageNames(
  project: ProjectConfig,
  overrides: {repository?: string; tag?: string},
  options: {revision?: boolean} = {},
): Promise<ImageNames> {
  const given = overrides.tag ?? project.values.image?.tag
  const git = given === undefined || options.revision ? await gitState(project.dir) : undefined
  const version = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {version: string}).version
  const tag = given ?? (git ? git.commit.slice(0, 12) + (git.dirty ? '-dirty' : '') : version)
  const repository = overrides.repository ?? project.values.image?.repository ?? defaultImageRepository(project.values.name)
  return {repository, tag, revision: git?.commit, version, ref: component => `${repository}/${component}:${tag}`}
}

/** The repository of a project that names none: mlops/<project name>. */
export function defaultImageRepository(projectName: string | undefined): string {
  return `mlops/${projectName ?? 'model-load'}`
}

/** The registry host of an image reference, as the Docker CLI decides it. */
export function registryOf(ref: string): string {
  const first = ref.split('/')[0]
  return ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost') ? first : 'docker.io'
}
