import {Flags} from '@oclif/core'
import {mkdir} from 'node:fs/promises'
import {join} from 'node:path'
import {stringify} from 'yaml'

import {BaseCommand} from '../cli/base-command.js'
import {storeFlags, storeOverrides} from '../cli/store-flags.js'
import {UsageError} from '../errors.js'
import {toYaml} from '../manifests/render.js'
import {renderProject} from '../manifests/service.js'
import {LATEST, parseModelRef} from '../store/names.js'
import {openStore, resolveStoreSettings} from '../store/open.js'
import {writeFileAtomic} from '../util/fs-atomic.js'

export interface RenderCommandResult {
  model: string
  sha256: string
  objects: Array<{apiVersion: string; kind: string; name: string; namespace?: string}>
  files?: string[]
}

/** Plain YAML: no anchors for repeated values, so every object reads on its own. */
const yamlText = (value: unknown) => stringify(value, {aliasDuplicateObjects: false})

export default class Render extends BaseCommand<typeof Render> {
  static summary = 'Print (or write) the Kubernetes manifests that deploy would apply.'

  static description = `Resolves the model ref to a concrete version and sha256 first, so the manifests pin it: the loader initContainer pulls exactly NAME@VERSION. Images are pinned by digest when .mlops/state.json has one from mlops image push. Templates come from templates/manifests/, each overridable by a file of the same name in the project's manifests/ folder. Values: the deploy section of mlops.yaml, then each -f file, then each --set KEY=VALUE (later wins).`

  static examples = [
    '<%= config.bin %> <%= command.id %> --model iris@prod',
    '<%= config.bin %> <%= command.id %> --model iris@3 --set replicas=3 --set resources.limits.memory=1Gi --out rendered/',
    '<%= config.bin %> <%= command.id %> -f staging.yaml --json',
  ]

  static flags = {
    model: Flags.string({summary: 'NAME@REF to deploy (default: model.name in mlops.yaml, at latest).', env: 'MLOPS_MODEL'}),
    values: Flags.string({char: 'f', summary: 'Values file with deploy settings (repeatable; later wins).', multiple: true, default: []}),
    set: Flags.string({summary: 'KEY=VALUE deploy setting, e.g. replicas=3 (repeatable; wins over -f).', multiple: true, default: []}),
    out: Flags.string({summary: 'Write one file per template into this folder instead of printing.'}),
    tag: Flags.string({summary: 'Image tag (default: as image build).', env: 'MLOPS_IMAGE_TAG'}),
    repository: Flags.string({summary: 'Image repository (default: as image build).', env: 'MLOPS_IMAGE_REPOSITORY'}),
    ...storeFlags,
  }

  async run(): Promise<RenderCommandResult> {
    const {flags, project} = this
    const refText = flags.model ?? project.values.model?.name
    if (!refText) throw new UsageError('no model to deploy: pass --model NAME@REF', {suggestion: 'or set model.name in mlops.yaml'})
    const settings = resolveStoreSettings(project, storeOverrides(flags), process.cwd())
    if (!settings.uri.startsWith('gs://')) {
      throw new UsageError(`pods cannot read the local store ${settings.uri}: Kubernetes deployments load models from a gs:// store`, {
        suggestion: 'set store: gs://BUCKET[/PREFIX] in mlops.yaml (or --store / MLOPS_STORE) and push the model there',
      })
    }

    const manifest = await (await openStore(settings)).resolve(parseModelRef(refText, {defaultRef: LATEST}))
    const result = await renderProject({project, manifest, store: settings, valuesFiles: flags.values, sets: flags.set, image: {repository: flags.repository, tag: flags.tag}})
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
          await handle.writeFile(toYaml([file], yamlText))
        })
        summary.files.push(path)
      }

      this.log(`wrote ${summary.files.length} files to ${flags.out} for ${summary.model}`)
    } else if (!this.jsonEnabled()) {
      process.stdout.write(toYaml(result.files, yamlText))
    }

    return summary
  }
}
