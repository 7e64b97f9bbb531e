import {randomBytes} from 'node:crypto'
import {type Dirent, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, relative} from 'node:path'

import {ModelStore} from '../../src/store/model-store.js'
import {type StoreSettings, openBackend} from '../../src/store/open.js'
import type {TransferTuning} from '../../src/store/transfer.js'
import type {FakeGcs} from '../env/fake-gcs.js'
import {sharedGcs} from '../env/global.js'

export type StoreKind = 'gcs' | 'local'
export const STORE_KINDS: StoreKind[] = ['local', 'gcs']

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'models')
export const fixture = (name: string) => join(FIXTURES, name)
export const expected = JSON.parse(readFileSync(fixture('expected.json'), 'utf8'))

/** A fresh, empty store of one kind: a temp folder, or a new bucket on the shared emulator. */
export interface StoreFixture {
  kind: StoreKind
  uri: string
  settings: StoreSettings
  store: ModelStore
  /** Environment that points the CLI at this store. */
  env: Record<string, string>
  /** Every object key in the store (temp files included, so leftovers show). */
  keys(): Promise<string[]>
  read(key: string): Promise<Buffer | undefined>
  /** Replaces an object's bytes behind the store's back. */
  corrupt(key: string, data: Buffer): Promise<void>
  gcs?: FakeGcs
}

export async function makeStore(kind: StoreKind, tuning: Partial<TransferTuning> = {}, gcs?: FakeGcs): Promise<StoreFixture> {
  if (kind === 'local') {
    const root = join(tempDir('mlops-store-'), 'store')
    // An empty store that exists: keys() then lists this very folder, and a check aimed elsewhere fails.
    mkdirSync(root)
    const settings: StoreSettings = {uri: root, baseDir: root, anonymous: false, timeoutSeconds: 5}
    return {
      kind,
      uri: root,
      settings,
      env: {MLOPS_STORE: root},
      store: new ModelStore(await openBackend(settings), {timeoutMs: 5000, ...tuning}),
      async keys() {
        return listFiles(root)
      },
      async read(key) {
        try {
          return readFileSync(join(root, key))
        } catch {
          return undefined
        }
      },
      async corrupt(key, data) {
        mkdirSync(dirname(join(root, key)), {recursive: true})
        writeFileSync(join(root, key), data)
      },
    }
  }

  const server = gcs ?? (await sharedGcs())
  const bucket = `test-${randomBytes(6).toString('hex')}`
  await server.createBucket(bucket)
  const uri = `gs://${bucket}/models`
  const settings: StoreSettings = {uri, baseDir: '/', endpoint: server.url, anonymous: true, timeoutSeconds: 5}
  return {
    kind,
    uri,
    settings,
    gcs: server,
    env: {MLOPS_STORE: uri, MLOPS_GCS_ENDPOINT: server.url},
    store: new ModelStore(await openBackend(settings), {timeoutMs: 5000, ...tuning}),
    async keys() {
      return (await server.listObjects(bucket)).map(name => name.replace(/^models\//, ''))
    },
    async read(key) {
      return server.readObject(bucket, `models/${key}`)
    },
    async corrupt(key, data) {
      await server.overwriteObject(bucket, `models/${key}`, data)
    },
  }
}

/**
 * Every file below `dir`. A folder that does not exist is an error, not an
 * empty list: a leftover check aimed at the wrong path must fail, not pass.
 */
function walk(dir: string): string[] {
  let entries: Dirent[]
  try {
    entries = readdirSync(dir, {withFileTypes: true})
  } catch (error) {
    throw new Error(
      `cannot list ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message} (a leftover check needs a folder that exists)`,
    )
  }

  return entries
    .flatMap(entry => {
      const path = join(dir, entry.name)
      return entry.isDirectory() ? walk(path) : [path]
    })
    .sort()
}

export function tempDir(prefix = 'mlops-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** Every file below `dir`, relative to it, hidden temp files included. */
export function listFiles(dir: string): string[] {
  return walk(dir).map(path => relative(dir, path))
}

export function randomFile(dir: string, name: string, size: number, seed = 1): string {
  const path = join(dir, name)
  const data = Buffer.alloc(size)
  let x = seed
  for (let i = 0; i < size; i += 4) {
    // xorshift32: reproducible bytes without holding a second buffer
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    data.writeInt32LE(x | 0, Math.min(i, size - 4))
  }

  writeFileSync(path, data)
  return path
}

export {randomBytes}

/** mlops.yaml of a project that deploys the iris fixture from a gs:// test store to the test control plane. */
export function writeK8sProject(project: string, store: {uri: string; env: Record<string, string>}, namespace: string): void {
  const lines = [
    'name: iris',
    'model:',
    '  name: iris',
    'store:',
    `  uri: ${store.uri}`,
    `  endpoint: ${store.env.MLOPS_GCS_ENDPOINT}`,
    'image:',
    '  repository: registry.example.com/team',
    '  tag: v1',
    'deploy:',
    '  target: k8s',
    `  namespace: ${namespace}`,
    '  autoscaling: false',
    '  replicas: 2',
  ]
  writeFileSync(join(project, 'mlops.yaml'), `${lines.join('\n')}\n`)
}
