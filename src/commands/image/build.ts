import {Flags} from '@oclif/core'
import {existsSync} from 'node:fs'
import {join} from 'node:path'

import {BaseCommand} from '../../cli/base-command.js'
import {createLogger} from '../../cli/log.js'
import {type BuiltImage, buildImage} from '../../images/build.js'
import {runtimeLabels} from '../../images/compat.js'
import {connectDocker} from '../../images/docker.js'
import {componentsOf, imageNames} from '../../images/names.js'
import {probeRuntimeSupport} from '../../runtime/capabilities.js'
import {formatBytes} from '../../util/text.js'
import {componentArgs, imageNameFlags} from '../../cli/image-flags.js'

/** docker/<component>.Dockerfile in the project (mlops init writes them) replaces the packaged one. */
function projectDockerfile(dir: string, component: string): string | undefined {
  const path = join(dir, 'docker', `${component}.Dockerfile`)
  return existsSync(path) ? path : undefined
}

export default class ImageBuild extends BaseCommand<typeof ImageBuild> {
  static summary = 'Build the loader and API images with the Docker engine.'

  static description = [
    `Builds the project's docker/<component>.Dockerfile when it has one (mlops init writes them), else the packaged`,
    `templates/images/<component>.Dockerfile, with this mlops package as the build context (honouring its .dockerignore),`,
    `with host networking. The base image (node:20-slim unless --base-image or image.base names another) must be in the`,
    `engine, or the engine must be able to pull it; a missing one exits 10 saying so.`,
    `Tags <image.repository>/<component>:<tag>, where the tag defaults to the project's git short sha (else the mlops version).`,
    `Labels: org.opencontainers.image.* and io.mlops.component; the API image also carries its ONNX Runtime version and the`,
    `highest ONNX IR version and opsets it loads (io.mlops.*), which mlops image check and deploy read.`,
    `A failing step exits 10 with the step and its output.`,
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> api --tag 1.4.0 --json',
    'DOCKER_HOST=tcp://127.0.0.1:2375 <%= config.bin %> <%= command.id %> loader --verbose',
  ]

  static args = componentArgs

  static flags = {
    ...imageNameFlags,
    'base-image': Flags.string({
      summary: 'Base image (default: image.base, else node:20-slim). The engine pulls it when it is missing and can reach its registry.',
      env: 'MLOPS_BASE_IMAGE',
    }),
    verbose: Flags.boolean({summary: 'Print the whole build log.', default: false}),
  }

  async run(): Promise<{images: BuiltImage[]}> {
    const {flags, project} = this
    const names = await imageNames(project, {repository: flags.repository, tag: flags.tag}, {revision: true})
    const docker = await connectDocker()
    const verbose = flags.verbose && !this.jsonEnabled() ? createLogger('text', 'build') : undefined
    const images: BuiltImage[] = []
    for (const component of componentsOf(this.args.component)) {
      const progress = await this.progress()
      progress.start(`Building ${component}`)
      try {
        const labels: Record<string, string> = {
          'org.opencontainers.image.title': `mlops ${component}`,
          'org.opencontainers.image.description':
            component === 'api' ? 'Model-load pattern API: mlops serve (ONNX Runtime)' : 'Model-load pattern loader: mlops model pull',
          'org.opencontainers.image.version': names.tag,
          'org.opencontainers.image.created': new Date().toISOString(),
          ...(names.revision ? {'org.opencontainers.image.revision': names.revision} : {}),
          'io.mlops.component': component,
          'io.mlops.version': names.version,
          ...(component === 'api' ? runtimeLabels(await probeRuntimeSupport()) : {}),
        }
        const image = await buildImage(docker, {
          component,
          tags: [names.ref(component)],
          labels,
          baseImage: flags['base-image'] ?? project.values.image?.base ?? 'node:20-slim',
          dockerfile: projectDockerfile(project.dir, component),
          onStep: step => progress.text(`Building ${component}: ${step}`),
          onLine: verbose ? line => verbose('info', line) : undefined,
        })
        progress.succeed(`Built ${component}`)
        this.log(
          `${component.padEnd(6)}  ${image.id.slice(0, 19)}  ${image.tags.join(', ')}  ${formatBytes(image.size)}  ${image.seconds.toFixed(1)}s`,
        )
        images.push(image)
      } finally {
        progress.stop()
      }
    }

    return {images}
  }
}
