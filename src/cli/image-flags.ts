import {Args, Flags} from '@oclif/core'

import {REGISTRY_ENV} from '../images/credentials.js'
import {COMPONENTS} from '../images/names.js'

/** How images are named, for the commands that build, push or reference them. */
export const imageNameFlags = {
  tag: Flags.string({summary: 'Image tag (default: image.tag, else the git short sha, else the mlops version).', env: 'MLOPS_IMAGE_TAG'}),
  repository: Flags.string({
    summary: 'Image repository (default: image.repository, else mlops/<project name>).',
    env: 'MLOPS_IMAGE_REPOSITORY',
  }),
}

/** Which image build and push act on. */
export const componentArgs = {
  component: Args.string({description: 'Which image.', options: [...COMPONENTS, 'all'], default: 'all'}),
}

/** The registry user of the commands that log in to a registry; the password is the variable only. */
export const registryUserFlag = Flags.string({
  summary: `Registry user (with ${REGISTRY_ENV.password}; never pass a password as a flag).`,
  env: REGISTRY_ENV.username,
})

/** Which platforms image build builds and image push pushes: comma-separated or repeated. */
export const platformFlag = Flags.string({
  summary: "Platforms: linux/amd64, linux/arm64 or both, comma-separated (default: image.platforms, else the Docker engine's).",
  env: 'MLOPS_IMAGE_PLATFORMS',
  multiple: true,
})
