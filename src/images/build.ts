import type Docker from 'dockerode'

import {BuildError, errorMessage} from '../errors.js'
import {probeRuntimeSupport} from '../onnx/runtime-support.js'
import {buildContext} from './context.js'
import {dockerEndpoint, inspectImage, jsonLines} from './docker.js'
import {runtimeLabels} from './compat.js'
import {type Component, type ImageNames, PACKAGE_ROOT} from './names.js'
import {type Platform, archOf, describePlatform, platformOf, platformRef} from './platforms.js'

export type {Component} from './names.js'

export interface BuildRequest {
  component: Component
  /** Repository:tag names; the first is the build's own tag. */
  tags: string[]
  labels: Record<string, string>
  baseImage: string
  platform: Platform
  /** The project's own Dockerfile for this component, used instead of the packaged one. */
  dockerfile?: string
  /** Every line of build output, as it comes. */
  onLine?: (line: string) => void
  /** The step being run ("Step 4/12 : RUN npm ci ..."). */
  onStep?: (step: string) => void
}

export interface BuiltImage {
  component: Component
  platform: Platform
  id: string
  tags: string[]
  size: number
  seconds: number
}

interface BuildEvent {
  stream?: string
  status?: string
  aux?: {ID?: string}
  error?: string
  errorDetail?: {message?: string; code?: number}
}

/**
 * A failed FROM step: the base image is not in the engine and the engine could
 * not pull it (offline, it fails with a DNS error that names no image). Say
 * which image it was and how to provide it.
 */
function missingBaseImage(request: BuildRequest, step: string, failure: string): BuildError {
  const from = step.replace(/^Step \d+\/\d+ : FROM\s+/i, '').split(/\s+/)
  const image = (from.find(word => !word.startsWith('--')) ?? request.baseImage).replace(/\$\{?BASE_IMAGE\}?/, request.baseImage)
  return new BuildError(
    `${request.component} image: base image ${image} is not in the Docker engine at ${dockerEndpoint()}, and the engine could not pull it: ${failure}`,
    {
      suggestion: `docker pull ${image} where the engine can reach its registry, or name an image the engine has with --base-image (MLOPS_BASE_IMAGE, image.base)`,
    },
  )
}

/**
 * A base image the engine has for another platform than the one asked. The engine's classic
 * image store keeps one platform per tag and its builder then builds on it whatever platform
 * was asked, so the image would be for the wrong platform: refuse before building.
 */
async function requireBasePlatform(docker: Docker, request: BuildRequest): Promise<void> {
  const base = await inspectImage(docker, request.baseImage)
  if (!base || platformOf(base.Os, base.Architecture) === request.platform) return
  throw wrongPlatform(request, `its base image ${request.baseImage} is ${describePlatform(base.Os, base.Architecture)} in this engine`)
}

function wrongPlatform(request: BuildRequest, why: string): BuildError {
  return new BuildError(`${request.component} image for ${request.platform}: ${why}`, {
    suggestion: `name a ${request.platform} base image: --base-image ${request.platform}=IMAGE (image.base.${request.platform} in mlops.yaml)`,
  })
}

/**
 * One image from templates/images/<component>.Dockerfile, through dockerode.
 * Host networking (the daemon runs without a bridge), and every
 * event of the build stream is checked: the engine reports a failed RUN as
 * an ordinary event in a stream that ends normally.
 */
export async function buildImage(docker: Docker, request: BuildRequest): Promise<BuiltImage> {
  const started = Date.now()
  const dockerfile = `templates/images/${request.component}.Dockerfile`
  const [tag, ...more] = request.tags
  await requireBasePlatform(docker, request)
  const stream: NodeJS.ReadableStream = await docker.buildImage(buildContext(PACKAGE_ROOT, dockerfile, request.dockerfile), {
    t: tag,
    dockerfile,
    networkmode: 'host',
    rm: true,
    forcerm: true,
    platform: request.platform,
    // What BuildKit sets by itself; the classic builder needs them given.
    buildargs: {BASE_IMAGE: request.baseImage, TARGETPLATFORM: request.platform, TARGETOS: 'linux', TARGETARCH: archOf(request.platform)},
    labels: request.labels,
  })
  const log: string[] = []
  let step = ''
  let id: string | undefined
  let failure: string | undefined
  for await (const event of jsonLines<BuildEvent>(stream)) {
    if (event.errorDetail || event.error) failure ??= event.errorDetail?.message ?? event.error
    if (event.aux?.ID) id = event.aux.ID
    const text = event.stream ?? event.status
    if (!text) continue
    for (const outputLine of text.split('\n').filter(l => l.trim())) {
      log.push(outputLine)
      request.onLine?.(outputLine)
      if (/^Step \d+\/\d+ : /.test(outputLine)) {
        step = outputLine
        request.onStep?.(step)
      }
    }
  }

  if (failure && /^Step \d+\/\d+ : FROM /i.test(step)) throw missingBaseImage(request, step, failure)
  if (failure || !id) {
    const output = log
      .slice(log.lastIndexOf(step) + 1)
      .slice(-20)
      .join('\n')
    throw new BuildError(`${request.component} image: ${step || 'build'} failed: ${failure ?? 'the engine returned no image id'}`, {
      suggestion: output ? `last output of that step:\n${output}` : 'run again with --verbose for the full log',
    })
  }

  const info = await docker.getImage(id).inspect()
  if (platformOf(info.Os, info.Architecture) !== request.platform) {
    // Nothing of a wrong-platform build stays under the name (the image itself may be shared).
    await docker
      .getImage(tag)
      .remove({noprune: true})
      .catch(() => {})
    throw wrongPlatform(request, `the engine built a ${describePlatform(info.Os, info.Architecture)} image (from ${request.baseImage})`)
  }

  for (const name of more) {
    const at = name.lastIndexOf(':')
    await docker
      .getImage(id)
      .tag({repo: name.slice(0, at), tag: name.slice(at + 1)})
      .catch(error => {
        throw new BuildError(`tagging ${name}: ${errorMessage(error)}`)
      })
  }

  return {
    component: request.component,
    platform: request.platform,
    id,
    tags: request.tags,
    size: info.Size,
    seconds: (Date.now() - started) / 1000,
  }
}

/** What image build builds: each component for each platform. */
export interface ProjectBuild {
  components: Component[]
  platforms: Platform[]
  /** The engine's own platform: its image gets the plain tag when several are built. */
  enginePlatform: Platform
  names: ImageNames
  baseImages: Record<Platform, string>
  /** The project's own Dockerfile for a component, if it has one. */
  dockerfile: (component: Component) => string | undefined
  onStart?: (component: Component, platform: Platform) => void
  onStep?: (component: Component, platform: Platform, step: string) => void
  onLine?: (line: string) => void
  onBuilt?: (image: BuiltImage) => void
}

/**
 * The project's images, each component for each platform. One platform: <repository>/<component>:<tag>.
 * Several: <tag>-<arch> each (the engine's store keeps one platform per tag), and the plain tag on
 * the engine's own platform's image, so the docker target runs it; image push joins them into one
 * index. Every image is labelled with the whole platform list (io.mlops.platforms).
 */
export async function buildProjectImages(docker: Docker, build: ProjectBuild): Promise<BuiltImage[]> {
  const {names, platforms} = build
  const plain = platforms.includes(build.enginePlatform) ? build.enginePlatform : platforms[0]
  const support = build.components.includes('api') ? runtimeLabels(await probeRuntimeSupport()) : {}
  const images: BuiltImage[] = []
  for (const component of build.components) {
    for (const platform of platforms) {
      const ref = names.ref(component)
      build.onStart?.(component, platform)
      const image = await buildImage(docker, {
        component,
        platform,
        tags: platforms.length === 1 ? [ref] : [platformRef(ref, platform), ...(platform === plain ? [ref] : [])],
        labels: {
          'org.opencontainers.image.title': `mlops ${component}`,
          'org.opencontainers.image.description':
            component === 'api' ? 'Model-load pattern API: mlops serve (ONNX Runtime)' : 'Model-load pattern loader: mlops model pull',
          'org.opencontainers.image.version': names.tag,
          'org.opencontainers.image.created': new Date().toISOString(),
          ...(names.revision ? {'org.opencontainers.image.revision': names.revision} : {}),
          'io.mlops.component': component,
          'io.mlops.version': names.version,
          'io.mlops.platforms': platforms.join(','),
          ...(component === 'api' ? support : {}),
        },
        baseImage: build.baseImages[platform],
        dockerfile: build.dockerfile(component),
        onStep: step => build.onStep?.(component, platform, step),
        onLine: build.onLine,
      })
      build.onBuilt?.(image)
      images.push(image)
    }
  }

  return images
}
