import {isAbsolute, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import type {ProjectConfig} from '../config/load.js'
import {ConfigError, UsageError} from '../errors.js'
import type {StorageBackend} from './backend.js'
import {LocalBackend} from './local.js'
import {DEFAULT_LOCAL_STORE, DEFAULT_STORE_TIMEOUT_SECONDS} from './defaults.js'
import {ModelStore} from './model-store.js'

export {DEFAULT_LOCAL_STORE, DEFAULT_STORE_TIMEOUT_SECONDS} from './defaults.js'

/** Store settings as flags and MLOPS_* variables give them (both override mlops.yaml). */
export interface StoreOverrides {
  store?: string
  endpoint?: string
  anonymous?: boolean
  project?: string
  timeout?: number
}

export interface StoreSettings {
  uri: string
  /** Folder a relative local store path is resolved against. */
  baseDir: string
  endpoint?: string
  /**
   * true: no credentials. false (said explicitly): credentials even to a
   * plain-http endpoint (a credential-checking proxy on this machine).
   * Unset: credentials, except to a plain-http endpoint (emulators).
   */
  anonymous?: boolean
  project?: string
  timeoutSeconds: number
}

/** mlops.yaml, then MLOPS_* / flags; a local folder next to mlops.yaml when nothing says otherwise. */
export function resolveStoreSettings(config: ProjectConfig, overrides: StoreOverrides, cwd: string): StoreSettings {
  const fromFile = typeof config.values.store === 'string' ? {uri: config.values.store} : (config.values.store ?? {})
  const uri = overrides.store ?? fromFile.uri ?? DEFAULT_LOCAL_STORE
  return {
    uri,
    baseDir: overrides.store === undefined ? config.dir : cwd,
    endpoint: overrides.endpoint ?? fromFile.endpoint ?? emulatorHost(),
    anonymous: overrides.anonymous ?? anonymousFromEnv() ?? fromFile.anonymous,
    project: overrides.project ?? fromFile.project,
    timeoutSeconds: overrides.timeout ?? fromFile.timeout ?? DEFAULT_STORE_TIMEOUT_SECONDS,
  }
}

/**
 * STORAGE_EMULATOR_HOST, the variable Google's client libraries and
 * fake-gcs-server's documentation use, names the endpoint when nothing more
 * specific does ("127.0.0.1:4443" or "http://127.0.0.1:4443").
 */
function emulatorHost(): string | undefined {
  const host = process.env.STORAGE_EMULATOR_HOST?.trim()
  if (!host) return undefined
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(host) ? host.replace(/\/+$/, '') : `http://${host}`
}

/**
 * An explicit MLOPS_GCS_ANONYMOUS=false. The --anonymous flag reads the
 * variable too, but a boolean flag cannot tell "false" from unset, and only
 * "false" sends credentials to a plain-http endpoint.
 */
function anonymousFromEnv(): false | undefined {
  const value = process.env.MLOPS_GCS_ANONYMOUS?.trim() ?? ''
  if (/^(false|0|no|n)$/i.test(value)) return false
  // The flag reads "true": anything else is a typo that would silently send credentials.
  if (value !== '' && !/^(true|1|yes|y)$/i.test(value))
    throw new UsageError(`MLOPS_GCS_ANONYMOUS must be true or false, got "${value.slice(0, 40)}"`, {
      suggestion: 'unset it, or set MLOPS_GCS_ANONYMOUS=true (no credentials) or false (credentials even to a plain-http endpoint)',
    })
  return undefined
}

/**
 * A GCS endpoint is http(s)://HOST[:PORT][/PATH], or HOST[:PORT] (https): no
 * credentials in it (a user:pass@ without a scheme would be taken for a host),
 * no query or fragment (a ?key=... would be a secret sent with every request
 * and printed in errors). The value itself is not quoted: it may hold one.
 */
export function checkEndpoint(endpoint: string | undefined): void {
  if (endpoint === undefined) return
  const hint = {
    suggestion:
      'use http://HOST:PORT for an emulator, https://HOST for a private endpoint (credentials come from GOOGLE_APPLICATION_CREDENTIALS)',
  }
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `https://${endpoint}`
  if (!URL.canParse(withScheme)) throw new UsageError('the GCS endpoint is not a URL', hint)
  const url = new URL(withScheme)
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`the GCS endpoint must be http:// or https://, not ${url.protocol.slice(0, 20)}//`, hint)
  if (url.username || url.password || endpoint.includes('@'))
    throw new UsageError('the GCS endpoint has credentials in it (USER:PASSWORD@); GCS takes none there', hint)
  if (url.search || url.hash || /[?#]/.test(endpoint)) throw new UsageError('the GCS endpoint has a query or fragment (?... or #...)', hint)
}

/** Where a store URI points: a bucket and prefix, or a folder on this machine. */
export type StoreLocation = {kind: 'gcs'; bucket: string; prefix: string} | {kind: 'local'; root: string}

/**
 * The one reading of a store URI: gs://BUCKET[/PREFIX] (a valid bucket name), file:///absolute/path,
 * or a folder (relative to settings.baseDir); any other scheme is refused.
 */
export function storeLocation(settings: Pick<StoreSettings, 'baseDir' | 'uri'>): StoreLocation {
  const {uri} = settings
  if (uri.startsWith('gs://')) {
    const [bucket, ...rest] = uri.slice('gs://'.length).split('/')
    if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(bucket)) {
      throw new UsageError(`invalid store ${uri}: "${bucket}" is not a valid bucket name`, {
        suggestion: 'use gs://BUCKET[/PREFIX] with a lowercase bucket name',
      })
    }

    return {kind: 'gcs', bucket, prefix: rest.join('/')}
  }

  if (uri.startsWith('file://')) return {kind: 'local', root: fileURLToPath(uri)}
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri)) {
    throw new UsageError(`unsupported store ${uri}`, {suggestion: 'use gs://BUCKET[/PREFIX], file:///absolute/path or a folder path'})
  }

  return {kind: 'local', root: isAbsolute(uri) ? uri : resolve(join(settings.baseDir, uri))}
}

/** The backend for a store URI; the GCS client is loaded only for gs:// stores (it costs ~0.2 s of start-up). */
export async function openBackend(settings: StoreSettings): Promise<StorageBackend> {
  if (!(settings.timeoutSeconds > 0))
    throw new ConfigError(`store timeout must be a positive number of seconds, got ${settings.timeoutSeconds}`)
  const location = storeLocation(settings)
  if (location.kind === 'local') return new LocalBackend(location.root)
  checkEndpoint(settings.endpoint)
  const {GcsBackend} = await import('./gcs.js')
  return new GcsBackend({
    bucket: location.bucket,
    prefix: location.prefix,
    endpoint: settings.endpoint,
    anonymous: settings.anonymous,
    project: settings.project,
    timeoutMs: settings.timeoutSeconds * 1000,
  })
}

export async function openStore(settings: StoreSettings): Promise<ModelStore> {
  return new ModelStore(await openBackend(settings), {
    timeoutMs: settings.timeoutSeconds * 1000,
    stallMs: Math.min(20_000, settings.timeoutSeconds * 1000),
  })
}
