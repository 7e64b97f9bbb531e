import {Flags} from '@oclif/core'
import {existsSync} from 'node:fs'
import {join} from 'node:path'

import {BaseCommand} from '../../cli/base-command.js'
import {createLogger} from '../../cli/log.js'
import {type BuiltImage, buildProjectImages} from '../../images/build.js'
import {connectDocker, enginePlatform} from '../../images/docker.js'
import {componentsOf, imageNames} from '../../images/names.js'
import {PLATFORMS, baseImages, requestedPlatforms} from '../../images/platforms.js'
import {UsageError} from '../../errors.js'
import {formatBytes} from '../../util/text.js'
import {componentArgs, imageNameFlags, platformFlag} from '../../cli/image-flags.js'

/** docker/<component>.Dockerfile in the project (mlops init writes them) replaces the packaged one. */
function projectDockerfile(dir: string, component: string): string | undefined {
  const path = join(dir, 'docker', `${component}.Dockerfile`)
  return existsSync(path) ? path : undefined
}

export interface BuiltImages {
  images: BuiltImage[]
}

export default class ImageBuild extends BaseCommand<typeof ImageBuild> {
  static summary = 'Build the loader and API images with the Docker engine.'

  static description = [
    `Builds the project's docker/<component>.Dockerfile when it has one (mlops init writes them), else the packaged`,
    `templates/images/<component>.Dockerfile, with this mlops package as the build context (honouring its .dockerignore),`,
    `with host networking. The base image (node:20-slim unless --base-image or image.base names another) must be in the`,
    `engine, or the engine must be able to pull it; a missing one exits 10 saying so.`,
    `Platforms: --platform (image.platforms), default the engine's own; linux/amd64 and linux/arm64. A platform other than the`,
    `engine's runs its build steps under emulation (Docker Desktop has it; on Linux, QEMU user emulation registered with`,
    `binfmt_misc). With several, each image is tagged <tag>-<arch> and the engine's own platform's also <tag>; image push`,
    `joins them into one index. A base image the engine has for another platform exits 10: name one per platform.`,
    `Tags <image.repository>/<component>:<tag>, where the tag defaults to the project's git short sha (else the mlops version).`,
    `Labels: org.opencontainers.image.*, io.mlops.component and io.mlops.platforms; the API image also carries its ONNX Runtime`,
    `version and the highest ONNX IR version and opsets it loads (io.mlops.*), which mlops image check and deploy read.`,
    `A failing step exits 10 with the step and its output.`,
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> api --tag 1.4.0 --json',
    '<%= config.bin %> <%= command.id %> --platform linux/amd64,linux/arm64',
    'DOCKER_HOST=tcp://127.0.0.1:2375 <%= config.bin %> <%= command.id %> loader --verbose',
  ]

  static args = componentArgs

  static flags = {
    ...imageNameFlags,
    platform: platformFlag,
    'base-image': Flags.string({
      summary:
        'Base image: IMAGE, or PLATFORM=IMAGE for one platform (repeatable; default: image.base, else node:20-slim). The engine pulls it when it is missing and can reach its registry.',
      env: 'MLOPS_BASE_IMAGE',
      multiple: true,
      default: [],
    }),
    verbose: Flags.boolean({summary: 'Print the whole build log.', default: false}),
  }

  async run(): Promise<BuiltImages> {
    const {flags, project} = this
    const platforms = requestedPlatforms(flags.platform, project.values.image?.platforms)
    const bases = baseImages(PLATFORMS, flags['base-image'], project.values.image?.base)
    const names = await imageNames(project, {repository: flags.repository, tag: flags.tag}, {revision: true})
    const docker = await connectDocker()
    // The engine's platform is the default, and names the image that keeps the plain tag; an engine
    // of a platform mlops does not build for is an error only when no platform is named.
    const engine = await enginePlatform(docker).catch((error: unknown) => {
      if (platforms && error instanceof UsageError) return platforms[0]
      throw error
    })
    const chosen = platforms ?? [engine]
    const verbose = flags.verbose && !this.jsonEnabled() ? createLogger('text', 'build') : undefined
    const progress = await this.progress()
    const label = (component: string, platform: string) => (chosen.length > 1 ? `${component} (${platform})` : component)
    try {
      const images = await buildProjectImages(docker, {
        components: componentsOf(this.args.component),
        platforms: chosen,
        enginePlatform: engine,
        names,
        baseImages: bases,
        dockerfile: component => projectDockerfile(project.dir, component),
        onStart: (component, platform) => progress.start(`Building ${label(component, platform)}`),
        onStep: (component, platform, step) => progress.text(`Building ${label(component, platform)}: ${step}`),
        onLine: verbose ? line => verbose('info', line) : undefined,
        onBuilt: image => {
          progress.succeed(`Built ${label(image.component, image.platform)}`)
          this.log(
            `${image.component.padEnd(6)}  ${image.platform.padEnd(11)}  ${image.id.slice(0, 19)}  ${image.tags.join(', ')}  ${formatBytes(image.size)}  ${image.seconds.toFixed(1)}s`,
          )
        },
      })
      return {images}
    } finally {
      progress.stop()
    }
  }
}
