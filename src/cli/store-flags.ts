import {Flags} from '@oclif/core'

import type {ProjectConfig} from '../config/load.js'
import {LOADER_ENV} from '../pod/contract.js'
import type {ModelStore} from '../store/model-store.js'
import {type StoreOverrides, openStore, resolveStoreSettings} from '../store/open.js'

/** Flags of every command that talks to the model store; each also reads its MLOPS_* variable, the one the loader container is given (pod contract). */
export const storeFlags = {
  store: Flags.string({
    summary: 'Model store: gs://BUCKET[/PREFIX], file:///path or a folder (default: .mlops/store next to mlops.yaml).',
    env: LOADER_ENV.store,
    helpGroup: 'STORE',
  }),
  'gcs-endpoint': Flags.string({
    summary: 'GCS API endpoint, e.g. http://127.0.0.1:4443 for fake-gcs-server.',
    env: LOADER_ENV.endpoint,
    helpGroup: 'STORE',
  }),
  anonymous: Flags.boolean({
    summary: 'Send no credentials (public buckets).',
    env: LOADER_ENV.anonymous,
    helpGroup: 'STORE',
    allowNo: false,
  }),
  'gcs-project': Flags.string({
    summary: 'Google Cloud project id for requests.',
    env: LOADER_ENV.project,
    helpGroup: 'STORE',
  }),
  'store-timeout': Flags.integer({
    summary: 'Seconds to keep retrying an unreachable store before exit code 7 (default 30, at most a day).',
    env: LOADER_ENV.timeout,
    min: 1,
    max: 86_400,
    helpGroup: 'STORE',
  }),
}

export function storeOverrides(flags: {
  store?: string
  'gcs-endpoint'?: string
  anonymous?: boolean
  'gcs-project'?: string
  'store-timeout'?: number
}): StoreOverrides {
  return {
    store: flags.store,
    endpoint: flags['gcs-endpoint'],
    // A boolean flag is false when absent; only an explicit true overrides mlops.yaml.
    anonymous: flags.anonymous ? true : undefined,
    project: flags['gcs-project'],
    timeout: flags['store-timeout'],
  }
}

/** The model store selected by mlops.yaml, MLOPS_* and the flags above. */
export async function storeFor(project: ProjectConfig, flags: Parameters<typeof storeOverrides>[0]): Promise<ModelStore> {
  return openStore(resolveStoreSettings(project, storeOverrides(flags), process.cwd()))
}
