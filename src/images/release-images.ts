import type {ProjectConfig} from '../config/load.js'
import {type PushedImage, readState} from '../state/project-state.js'
import {imageNames} from './names.js'

/**
 * The images a cluster release runs: <repository>/<component>:<tag>, each pinned by digest when
 * .mlops/state.json records that very ref as pushed (mlops image push); with what push recorded
 * of the API image when it is the one deployed (its platforms, for the node check).
 */
export async function releaseImages(
  project: ProjectConfig,
  overrides: {repository?: string; tag?: string},
): Promise<{loader: string; api: string; pushedApi?: PushedImage}> {
  const [names, state] = await Promise.all([imageNames(project, overrides), readState(project.dir)])
  const pinned = (pushed: PushedImage | undefined, ref: string) => (pushed?.ref === ref ? pushed.pinned : ref)
  const loader = pinned(state.images?.loader, names.ref('loader'))
  const api = pinned(state.images?.api, names.ref('api'))
  const pushedApi = state.images?.api?.pinned === api ? state.images.api : undefined
  return {loader, api, pushedApi}
}
