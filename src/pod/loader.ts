import {existsSync, writeFileSync} from 'node:fs'

import type {Logger} from '../cli/log.js'
import type {Progress} from '../cli/progress.js'
import type {ModelStore, PullResult} from '../store/model-store.js'
import {LATEST, parseModelRef} from '../store/names.js'
import {redactJson} from '../util/redact.js'
import {LOG_EVENTS, type LoaderSummary, TERMINATION_LOG} from './contract.js'

export interface LoaderOptions {
  /** NAME@REF as given (REF: version, alias or latest; NAME alone: latest). */
  ref: string
  destination: string
  labelsDestination?: string
  referenceDestination?: string
  /** Where the one-line summary goes (terminationLogPath), if anywhere. */
  terminationLog?: string
}

/** How the loader reports as it goes. */
export interface LoaderIO {
  /** The contract's log events (resolved, verified, up to date), in the chosen format; none without. */
  log?: Logger
  progress(): Promise<Progress>
  /** A warning on stderr. */
  note(message: string): void
}

/**
 * mlops model pull, the loader: resolves the ref in the store, downloads and
 * verifies the model into place (or finds it there already), logs the pod
 * contract's events, and writes the success summary to the termination log.
 */
export async function pullModel(options: LoaderOptions, openStore: () => Promise<ModelStore>, io: LoaderIO): Promise<PullResult> {
  const ref = parseModelRef(options.ref, {defaultRef: LATEST})
  const {log} = io
  const store = await openStore()
  const progress = await io.progress()
  progress.start(`Resolving ${options.ref} in ${store.uri}`)
  log?.('info', 'resolving', {ref: options.ref, store: store.uri})
  try {
    const result = await store.pull({
      ref,
      destination: options.destination,
      labelsDestination: options.labelsDestination,
      referenceDestination: options.referenceDestination,
      onResolved(manifest) {
        progress.text(`Downloading ${manifest.name}@${manifest.version}`)
        log?.('info', LOG_EVENTS.resolved, {ref: `${manifest.name}@${manifest.version}`, sha256: manifest.sha256, size: manifest.size})
      },
      onProgress: progress.bytes('Downloading'),
    })
    progress.stop()
    log?.('info', result.skipped ? LOG_EVENTS.upToDate : LOG_EVENTS.verified, {
      path: result.path,
      sha256: result.sha256,
      bytes: result.bytes,
      seconds: result.seconds,
    })
    // uptime: seconds since this process started, node's start-up included: a pod's loader lead time.
    writeTerminationSummary(options.terminationLog, {ok: true, ...result, uptime: Number(process.uptime().toFixed(3))}, io.note)
    return result
  } finally {
    progress.stop()
  }
}

/** --termination-log, else Kubernetes' /dev/termination-log where it exists (in a container), else nowhere. */
export function terminationLogPath(given: string | undefined): string | undefined {
  return given ?? (existsSync(TERMINATION_LOG) ? TERMINATION_LOG : undefined)
}

/** One JSON line, for `kubectl describe` and for deploy's diagnosis of a failed loader. A failed write is only a warning. */
export function writeTerminationSummary(path: string | undefined, summary: LoaderSummary, warn: (message: string) => void): void {
  if (!path) return
  try {
    writeFileSync(path, `${JSON.stringify(redactJson(summary))}\n`)
  } catch (error) {
    warn(`warning: could not write the termination summary to ${path}: ${(error as Error).message}`)
  }
}
