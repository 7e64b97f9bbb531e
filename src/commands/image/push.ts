import {BaseCommand} from '../../cli/base-command.js'
import {connectDocker} from '../../images/docker.js'
import {componentsOf, imageNames} from '../../images/names.js'
import {requestedPlatforms} from '../../images/platforms.js'
import {type PushedImages, pushProjectImages} from '../../images/push.js'
import {componentArgs, imageNameFlags, platformFlag, registryUserFlag} from '../../cli/image-flags.js'

export type {PushedImages} from '../../images/push.js'

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
    const {flags, project} = this
    const progress = await this.progress()
    try {
      const pushed = await pushProjectImages(await connectDocker(), project, {
        components: componentsOf(this.args.component),
        names: await imageNames(project, {repository: flags.repository, tag: flags.tag}),
        platforms: requestedPlatforms(flags.platform, project.values.image?.platforms),
        username: flags.username,
        onStart: (ref, platforms) => progress.start(`Pushing ${ref}${platforms.length > 1 ? ` for ${platforms.join(', ')}` : ''}`),
        onPushed: image => {
          progress.succeed(`Pushed ${image.component}`)
          this.log(`${image.component.padEnd(6)}  ${image.pinned}${image.platforms.length > 1 ? `  (${image.platforms.join(', ')})` : ''}`)
        },
      })
      this.log(`digests recorded in ${pushed.state}`)
      return pushed
    } finally {
      progress.stop()
    }
  }
}
