import type Docker from 'dockerode'

import {BuildError, errorMessage} from '../errors.js'
import {buildContext} from './context.js'
import {dockerEndpoint, jsonLines} from './docker.js'
import {type Component, PACKAGE_ROOT} from './names.js'

export type {Component} from './names.js'

export interface BuildRequest {
  component: Component
  /** Repository:tag names; the first is the build's own tag. */
  tags: string[]
  labels: Record<string, string>
  baseImage: string
  /** The project's own Dockerfile for this component, used instead of the packaged one. */
  dockerfile?: string
  /** Every line of build output, as it comes. */
  onLine?: (line: string) => void
  /** The step being run ("Step 4/12 : RUN npm ci ..."). */
  onStep?: (step: string) => void
}

export interface BuiltImage {
  component: Component
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
 * One image from templates/images/<component>.Dockerfile, through dockerode.
 * Host networking (the daemon runs without a bridge), and every
 * event of the build stream is checked: the engine reports a failed RUN as
 * an ordinary event in a stream that ends normally.
 */
export async function buildImage(docker: Docker, request: BuildRequest): Promise<BuiltImage> {
  const started = Date.now()
  const dockerfile = `templates/images/${request.component}.Dockerfile`
  const [tag, ...more] = request.tags
  const stream: NodeJS.ReadableStream = await docker.buildImage(
    buildContext(PACKAGE_ROOT, dockerfile, request.dockerfile) as unknown as NodeJS.ReadableStream,
    {
      t: tag,
      dockerfile,
      networkmode: 'host',
      rm: true,
      forcerm: true,
      buildargs: {BASE_IMAGE: request.baseImage},
      labels: request.labels,
    },
  )
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

  for (const name of more) {
    const at = name.lastIndexOf(':')
    await docker
      .getImage(id)
      .tag({repo: name.slice(0, at), tag: name.slice(at + 1)})
      .catch(error => {
        throw new BuildError(`tagging ${name}: ${errorMessage(error)}`)
      })
  }

  const info = await docker.getImage(id).inspect()
  return {component: request.component, id, tags: request.tags, size: info.Size, seconds: (Date.now() - started) / 1000}
}
