import {BaseCommand} from '../../cli/base-command.js'
import {givenCredentials, registryCredentials} from '../../images/credentials.js'
import {connectDocker} from '../../images/docker.js'
import {componentsOf, imageNames, registryOf} from '../../images/names.js'
import {type Platform, parsePlatforms} from '../../images/platforms.js'
import {builtPlatforms, pushImage, pushImageIndex, requireLocalPlatform} from '../../images/push.js'
import {statePath, updateState} from '../../state/project-state.js'
import {componentArgs, imageNameFlags, platformFlag, registryUserFlag} from '../../cli/image-flags.js'

export interface PushedImages {
  images: Array<{component: string; ref: string; digest: string; pinned: string; platforms: Platform[]}>
  state: string
}

export default class ImagePush extends BaseCommand<typeof ImagePush> {
  static summary = 'Push the loader and API images, and record their digests for deploy.'

  static description = [
    `Pushes <image.repository>/<component>:<tag> (the names image build gave them) to the registry in the name. Credentials:`,
    `MLOPS_REGISTRY_USERNAME and MLOPS_REGISTRY_PASSWORD, else $DOCKER_CONFIG/config.json (default ~/.docker) the way the Docker CLI reads it (credHelpers, auths, credsStore).`,
    `Images built for several platforms (--platform, image.platforms, else what image build recorded in the images) are`,
    `pushed as <tag>-<arch> each, then one index (manifest list) under <tag> that lists them: each node pulls its own platform's.`,
    `The pushed digests (the index's, for several platforms) go into .mlops/state.json (written atomically), so deploy pins`,
    `images by digest (repo@sha256:...). A refused push exits 6, an unreachable registry 7, an image missing for a platform 3.`,
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %>',
    'MLOPS_REGISTRY_USERNAME=ci MLOPS_REGISTRY_PASSWORD=$TOKEN <%= config.bin %> <%= command.id %> api --tag 1.4.0 --json',
    '<%= config.bin %> <%= command.id %> --platform linux/amd64,linux/arm64',
  ]

  static args = componentArgs

  static flags = {
    ...imageNameFlags,
    platform: platformFlag,
    username: registryUserFlag,
  }

  async run(): Promise<PushedImages> {
    const requested = this.flags.platform ?? this.project.values.image?.platforms
    const named = requested ? parsePlatforms(requested, this.flags.platform ? '--platform' : 'image.platforms') : undefined
    const names = await imageNames(this.project, {repository: this.flags.repository, tag: this.flags.tag})
    const docker = await connectDocker()
    const images: PushedImages['images'] = []
    for (const component of componentsOf(this.args.component)) {
      const ref = names.ref(component)
      const platforms = named ?? (await builtPlatforms(docker, ref))
      if (platforms.length === 1) await requireLocalPlatform(docker, ref, platforms[0])
      const auth = await registryCredentials(registryOf(ref), givenCredentials(this.flags.username))
      const progress = await this.progress()
      progress.start(`Pushing ${ref}${platforms.length > 1 ? ` for ${platforms.join(', ')}` : ''}`)
      try {
        const pushed = platforms.length > 1 ? await pushImageIndex(docker, ref, platforms, auth) : await pushImage(docker, ref, auth)
        progress.succeed(`Pushed ${component}`)
        const record = {ref: pushed.ref, digest: pushed.digest, pinned: pushed.pinned, platforms}
        await updateState(this.project.dir, state => {
          state.images = {...state.images, [component]: {...record, pushedAt: new Date().toISOString()}}
        })
        this.log(`${component.padEnd(6)}  ${pushed.pinned}${platforms.length > 1 ? `  (${platforms.join(', ')})` : ''}`)
        images.push({component, ...record})
      } finally {
        progress.stop()
      }
    }

    this.log(`digests recorded in ${statePath(this.project.dir)}`)
    return {images, state: statePath(this.project.dir)}
  }
}
