import {Flags} from '@oclif/core'
import {mkdir} from 'node:fs/promises'
import {join} from 'node:path'

import {BaseCommand} from '../cli/base-command.js'
import {renderFlags} from '../cli/flags.js'
import {storeOverrides} from '../cli/store-flags.js'
import {toYaml} from '../manifests/render.js'
import {renderRelease} from '../targets/k8s/release.js'
import {writeFileAtomic} from '../util/fs-atomic.js'

export interface RenderCommandResult {
  model: string
  sha256: string
  objects: Array<{apiVersion: string; kind: string; name: string; namespace?: string}>
  files?: string[]
}

export default class Render extends BaseCommand<typeof Render> {
  static summary = 'Print (or write) the Kubernetes manifests that deploy would apply.'

  static description = [
    `Resolves the model ref to a concrete version and sha256 first, so the manifests pin it: the loader initContainer pulls exactly NAME@VERSION.`,
    `Images are pinned by digest when .mlops/state.json has one from mlops image push.`,
    `Templates come from templates/manifests/, each overridable by a file of the same name in the project's manifests/ folder.`,
    `Values: the deploy section of mlops.yaml, then each -f file, then each --set KEY=VALUE (later wins).`,
  ].join(' ')

  static examples = [
    '<%= config.bin %> <%= command.id %> --model iris@prod',
    '<%= config.bin %> <%= command.id %> --model iris@3 --set replicas=3 --set resources.limits.memory=1Gi --out rendered/',
    '<%= config.bin %> <%= command.id %> -f staging.yaml --json',
  ]

  static flags = {
    ...renderFlags,
    out: Flags.string({summary: 'Write one file per template into this folder instead of printing.'}),
  }

  async run(): Promise<RenderCommandResult> {
    const {flags, project} = this
    const result = await renderRelease(project, {
      model: flags.model,
      store: storeOverrides(flags),
      values: flags.values,
      set: flags.set,
      namespace: flags.namespace,
      image: {repository: flags.repository, tag: flags.tag},
      delivery: flags.delivery,
    })
    const {manifest} = result
    const summary: RenderCommandResult = {
      model: `${manifest.name}@${manifest.version}`,
      sha256: manifest.sha256,
      objects: result.objects.map(o => ({apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace})),
    }
    if (flags.out) {
      await mkdir(flags.out, {recursive: true})
      summary.files = []
      for (const file of result.files) {
        const path = join(flags.out, file.template)
        await writeFileAtomic(path, async handle => {
          await handle.writeFile(toYaml([file]))
        })
        summary.files.push(path)
      }

      this.log(`wrote ${summary.files.length} files to ${flags.out} for ${summary.model}`)
    } else if (!this.jsonEnabled()) {
      process.stdout.write(toYaml(result.files))
    }

    return summary
  }
}
