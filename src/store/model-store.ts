import {NotFoundError} from '../errors.js'
import type {StorageBackend} from './backend.js'
import {type AliasResult, removeAlias, setAlias} from './aliases.js'
import {Catalog, MANIFEST, type ModelSummary, type VersionSummary} from './catalog.js'
import {type PushRequest, type PushResult, pushVersion, removeVersion} from './commit.js'
import type {ModelManifest} from './manifest.js'
import type {ModelRef} from './names.js'
import {type Publication, readPublications, recordPublication} from './publications.js'
import {type ReferenceRecord, type ReferenceWrite, readReference, recordReference} from './references.js'
import {type PullRequest, type PullResult, pullVersion} from './pull.js'
import {type Verification, type VersionVerifications, readAllVerifications, readVerifications, recordVerification} from './verifications.js'
import {DEFAULT_TUNING, type TransferTuning} from './transfer.js'

export type {AliasResult} from './aliases.js'
export type {ModelSummary, VersionSummary} from './catalog.js'
export type {PushRequest, PushResult} from './commit.js'
export type {PullRequest, PullResult} from './pull.js'
export type {Publication} from './publications.js'
export type {ReferenceRecord, ReferenceSummary, ReferenceWrite} from './references.js'
export type {Verification, VersionVerifications} from './verifications.js'

/**
 * Versioned, immutable, verified models on any StorageBackend: what the
 * commands use. Reading and resolving is the catalog's (catalog.ts); push
 * and remove follow the commit protocol (commit.ts); pull verifies before
 * anything is in place (pull.ts); aliases move by compare-and-swap (aliases.ts).
 */
export class ModelStore {
  private readonly tuning: TransferTuning
  private readonly catalog: Catalog

  constructor(
    readonly backend: StorageBackend,
    tuning: Partial<TransferTuning> & {timeoutMs: number},
  ) {
    this.tuning = {...DEFAULT_TUNING, ...tuning}
    this.catalog = new Catalog(backend)
  }

  get uri(): string {
    return this.backend.uri
  }

  listModels(): Promise<ModelSummary[]> {
    return this.catalog.listModels()
  }

  listVersions(name: string): Promise<{name: string; versions: VersionSummary[]; aliases: Record<string, string>}> {
    return this.catalog.listVersions(name)
  }

  /** The manifest a ref (version, alias or latest) points at now. */
  resolve(ref: ModelRef): Promise<ModelManifest> {
    return this.catalog.resolve(ref)
  }

  push(request: PushRequest): Promise<PushResult> {
    return pushVersion(this.catalog, request)
  }

  pull(request: PullRequest): Promise<PullResult> {
    return pullVersion(this.catalog, this.tuning, request)
  }

  setAlias(ref: ModelRef, alias: string): Promise<AliasResult> {
    return setAlias(this.catalog, ref, alias)
  }

  removeAlias(name: string, alias: string): Promise<AliasResult> {
    return removeAlias(this.catalog, name, alias)
  }

  /** The stored manifest's own bytes (a published image carries them as they are). */
  async manifestBytes(manifest: ModelManifest): Promise<Buffer> {
    const object = await this.backend.read(this.catalog.key(manifest.name, manifest.version, MANIFEST))
    if (!object) throw new NotFoundError(`${manifest.name}@${manifest.version} does not exist in ${this.uri}`)
    return object.data
  }

  /** Where a version was published as an OCI image. */
  publications(name: string, version: string): Promise<Publication[]> {
    return readPublications(this.catalog, name, version)
  }

  recordPublication(name: string, version: string, publication: Publication): Promise<Publication[]> {
    return recordPublication(this.catalog, name, version, publication)
  }

  /** The version's reference set (rows and the outputs recorded for them), verified; undefined when it has none. */
  reference(manifest: ModelManifest): Promise<ReferenceRecord | undefined> {
    return readReference(this.catalog, manifest)
  }

  recordReference(manifest: ModelManifest, record: ReferenceRecord, options: {replace: boolean}): Promise<ReferenceWrite> {
    return recordReference(this.catalog, manifest, record, options)
  }

  /** The API images the version was checked on (mlops image check), and what each check found. */
  verifications(name: string, version: string): Promise<Verification[]> {
    return readVerifications(this.catalog, name, version)
  }

  recordVerification(name: string, version: string, verification: Verification): Promise<Verification[]> {
    return recordVerification(this.catalog, name, version, verification)
  }

  /** Every version (of one model, or all) with the images it was verified on: the compatibility matrix. */
  allVerifications(name?: string): Promise<VersionVerifications[]> {
    return readAllVerifications(this.catalog, name)
  }

  /** Deletes a version (see removeVersion); undefined when `confirm` says no. */
  remove(name: string, version: string, confirm: () => Promise<boolean>): Promise<{deleted: string[]; committed: boolean} | undefined> {
    return removeVersion(this.catalog, name, version, confirm)
  }
}
