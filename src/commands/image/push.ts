import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {registryCredentials} from '../../images/credentials.js'
import {connectDocker} from '../../images/docker.js'
import {componentsOf, imageNames, registryOf} from '../../images/names.js'
import {pushImage} from '../../images/push.js'
import {statePath, updateState} from '../../state/project-state.js'
import {componentArgs, imageNameFlags} from '../../cli/image-flags.js'

export interface PushedImages {
  images: Array<{component: string; ref: string; digest: string; pinned: string}>
  state: string
}

export default class ImagePush extends BaseCommand<typeof ImagePush> {
  static summary = 'Push the loader and API images, and record their digests for deploy.'

  static description = [
    `Pushes <image.repository>/<component>:<tag> (the names image build gave them) to the registry in the name. Credentials:`,
    `MLOPS_REGISTRY_USERNAME and MLOPS_REGISTRY_PASSWORD, else $DOCKER_CONFIG/config.json (default ~/.docker) the way the Docker CLI reads it (credHelpers, auths, credsStore).`,
    `The pushed digests go into .mlops/state.json (written atomically), so deploy pins images by digest (repo@sha256:...).`,
    `A refused push exits 6, an unreachable registry 7.`,
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %>',
    'MLOPS_REGISTRY_USERNAME=ci MLOPS_REGISTRY_PASSWORD=$TOKEN <%= config.bin %> <%= command.id %> api --tag 1.4.0 --json',
  ]

  static args = componentArgs

  static flags = {
    ...imageNameFlags,
    username: Flags.string({
      summary: 'Registry user (with MLOPS_REGISTRY_PASSWORD; never pass a password as a flag).',
      env: 'MLOPS_REGISTRY_USERNAME',
    }),
  }

  async run(): Promise<PushedImages> {
    const names = await imageNames(this.project, {repository: this.flags.repository, tag: this.flags.tag})
    const docker = await connectDocker()
    const images: PushedImages['images'] = []
    for (const component of componentsOf(this.args.component)) {
      const ref = names.ref(component)
      const auth = await registryCredentials(registryOf(ref), {
        username: this.flags.username,
        password: process.env.MLOPS_REGISTRY_PASSWORD,
      })
      const progress = await this.progress()
      progress.start(`Pushing ${ref}`)
      try {
        const pushed = await pushImage(docker, ref, auth)
        progress.succeed(`Pushed ${component}`)
        await updateState(this.project.dir, state => {
          state.images = {...state.images, [component]: {...pushed, pushedAt: new Date().toISOString()}}
        })
        this.log(`${component.padEnd(6)}  ${pushed.pinned}`)
        images.push({component, ...pushed})
      } finally {
        progress.stop()
      }
    }

    this.log(`digests recorded in ${statePath(this.project.dir)}`)
    return {images, state: statePath(this.project.dir)}
  }
}
