/**
 * mlops image check: can this API image serve this model version, and does it answer as recorded?
 * First the labels (IR version and opsets against the image's io.mlops.* labels), then the image
 * itself on the Docker engine: `mlops serve --check` in a container with no network, given the
 * verified model, labels and reference set as the loader would give them, which loads the model,
 * warms up and answers the reference set (serve's runtime parity). What it found, ok or why not,
 * is recorded for the version in the store (verified.json): the compatibility matrix.
 * Without an image, the same check runs in this process on the ONNX Runtime this CLI packs.
 */
import type Docker from 'dockerode'
import {rm, stat} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {pack} from 'tar-stream'
import {createReadStream} from 'node:fs'

import {IncompatibleError, MlopsError, NotFoundError, errorMessage} from '../errors.js'
import {LABELS_PATH, LOG_EVENTS, MODEL_PATH, REFERENCE_PATH, apiEnv, envList, findLogEvent} from '../pod/contract.js'
import type {RuntimeSupport} from '../onnx/runtime-support.js'
import type {ModelManifest} from '../store/manifest.js'
import type {ModelStore, ReferenceRecord, Verification} from '../store/model-store.js'
import type {ParityResult} from '../serve/parity.js'
import {ownTempDir, processExists} from '../util/fs-atomic.js'
import {quoteServerText} from '../util/text.js'
import {requireCompatible} from './compat.js'
import {type ContainerRun, runToEnd} from './containers.js'

/** Labels on the check's containers: a later run removes those a killed run left. */
const CHECK_LABELS = {role: 'io.mlops.role', pid: 'io.mlops.check.pid', host: 'io.mlops.check.host'} as const
const TEMP_PREFIX = 'mlops-check-'

export interface ImageCheckRequest {
  store: ModelStore
  manifest: ModelManifest
  /** The API image on the engine; undefined: this CLI's runtime, in this process. */
  image?: {ref: string; docker: Docker}
  tolerance: number
  timeoutMs: number
  onProgress?: (text: string) => void
  /** Called with what was started, for the clean-up of an interrupted check. */
  track?: (cleanup: () => Promise<void>) => void
}

export interface ImageCheckResult {
  model: string
  sha256: string
  image: string | null
  /** The image's ID, when an image was checked. */
  imageId: string | null
  /** What the image's labels (or this CLI) say its runtime supports. */
  runtime: RuntimeSupport
  /** The runtime that answered, as serve names it ("onnxruntime-node 1.30.0"). */
  servedBy: string
  compatible: boolean
  reasons: string[]
  /** The reference set answered, when the version has one. */
  parity: ParityResult | null
  /** The result is in the store's record of the version (image checks only). */
  recorded: boolean
}

/** Runs the check. Throws exit 8 (recorded for an image) when the image cannot serve the version or answers otherwise. */
export async function checkImage(request: ImageCheckRequest, runtime: {support: RuntimeSupport; name: string}): Promise<ImageCheckResult> {
  const {manifest, store, image} = request
  const model = `${manifest.name}@${manifest.version}`
  const info = image && (await inspectForCheck(image.docker, image.ref))
  const record = async (verdict: Pick<Verification, 'ok' | 'parity' | 'reason' | 'runtime'>) => {
    if (!image || !info) return false
    try {
      await store.recordVerification(manifest.name, manifest.version, {
        image: image.ref,
        imageId: info.id,
        repoDigests: info.repoDigests,
        ...verdict,
        checkedAt: new Date().toISOString(),
      })
      return true
    } catch (error) {
      request.onProgress?.(`the result was not recorded in ${store.uri}: ${errorMessage(error).split('\n')[0]}`)
      return false
    }
  }

  const labelsRuntime = `onnxruntime-node ${runtime.support.runtime}`
  try {
    requireCompatible(manifest, runtime.support, runtime.name)
  } catch (error) {
    if (error instanceof IncompatibleError) await record({ok: false, reason: error.message, runtime: labelsRuntime})
    throw error
  }

  const reference = await store.reference(manifest)
  const dir = await ownTempDir(TEMP_PREFIX)
  request.track?.(async () => rm(dir, {recursive: true, force: true}))
  try {
    request.onProgress?.(`Pulling ${model}${reference ? ` and its reference set (${reference.rows} rows)` : ''}`)
    await store.pull({
      manifest,
      destination: join(dir, 'model.onnx'),
      ...(manifest.labels ? {labelsDestination: join(dir, 'labels.json')} : {}),
      ...(reference ? {referenceDestination: join(dir, 'reference.json')} : {}),
    })
    let answered: {servedBy: string; parity?: ParityResult}
    try {
      answered = image ? await checkInImage(request, image, dir, reference) : await checkHere(request, dir, reference)
    } catch (error) {
      if (error instanceof Refusal) await record({ok: false, reason: error.message, runtime: labelsRuntime})
      throw error
    }

    const parity = answered.parity
    const recorded = await record({
      ok: true,
      runtime: answered.servedBy,
      ...(parity && reference
        ? {parity: {sha256: reference.sha256, rows: parity.rows, maxDelta: parity.maxDelta, tolerance: parity.tolerance}}
        : {}),
    })
    return {
      model,
      sha256: manifest.sha256,
      image: image?.ref ?? null,
      imageId: info?.id ?? null,
      runtime: runtime.support,
      servedBy: answered.servedBy,
      compatible: true,
      reasons: [],
      parity: parity ?? null,
      recorded,
    }
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}

/** Exit 8 that is a statement about this image and this version (recorded), not about the check itself. */
class Refusal extends IncompatibleError {}

async function inspectForCheck(docker: Docker, ref: string): Promise<{id: string; repoDigests: string[]}> {
  const info = await docker
    .getImage(ref)
    .inspect()
    .catch((error: {statusCode?: number}) => {
      if (error.statusCode === 404)
        throw new NotFoundError(`image ${ref} is not in the Docker engine`, {
          suggestion: 'build it with mlops image build api, or pull it first',
        })
      throw error
    })
  const repoDigests = (info.RepoDigests ?? []).filter(d => /^[a-z0-9][\w./:-]{0,254}@sha256:[0-9a-f]{64}$/.test(d)).slice(0, 16)
  if (!/^sha256:[0-9a-f]{64}$/.test(info.Id))
    throw new IncompatibleError(`the Docker engine gave image ${ref} an ID that is not a sha256 digest`)
  return {id: info.Id, repoDigests}
}

/** This CLI's runtime: serve's own check, in this process. */
async function checkHere(request: ImageCheckRequest, dir: string, reference: ReferenceRecord | undefined) {
  const {checkServing} = await import('../serve/serve.js')
  const {manifest} = request
  request.onProgress?.(`Loading ${manifest.name}@${manifest.version} into this CLI's ONNX Runtime`)
  try {
    const result = await checkServing(
      {
        modelPath: join(dir, 'model.onnx'),
        labelsPath: manifest.labels ? join(dir, 'labels.json') : undefined,
        name: manifest.name,
        version: manifest.version,
        sha256: manifest.sha256,
        referencePath: reference ? join(dir, 'reference.json') : undefined,
        referenceTolerance: request.tolerance,
      },
      () => {},
    )
    return {servedBy: result.runtime ?? '', parity: result.parity}
  } catch (error) {
    if (error instanceof IncompatibleError) throw new Refusal(error.message, {suggestion: error.suggestion})
    throw error
  }
}

/**
 * The image's own `mlops serve --check`, as the pod would run it: the files where the loader puts
 * them (/workdir), the same environment, no network, no port. Its answer on stdout is read as
 * strictly as any input: an image can say anything.
 */
async function checkInImage(
  request: ImageCheckRequest,
  image: {ref: string; docker: Docker},
  dir: string,
  reference: ReferenceRecord | undefined,
): Promise<{servedBy: string; parity?: ParityResult}> {
  const {manifest} = request
  const {docker, ref} = image
  await removeLeftoverContainers(docker)
  request.onProgress?.(`Running ${manifest.name}@${manifest.version} in ${ref}`)
  let run: ContainerRun
  try {
    run = await runToEnd(
      docker,
      {
        Image: ref,
        Cmd: ['--check', '--json'],
        Env: envList([
          ...apiEnv(manifest, 8000, {pinSha256: true, reference: Boolean(reference)}),
          {name: 'MLOPS_REFERENCE_TOLERANCE', value: String(request.tolerance)},
          {name: 'MLOPS_LOG_FORMAT', value: 'json'},
        ]),
        Labels: {[CHECK_LABELS.role]: 'check', [CHECK_LABELS.pid]: String(process.pid), [CHECK_LABELS.host]: hostname().slice(0, 63)},
        NetworkDisabled: true,
        HostConfig: {NetworkMode: 'none', AutoRemove: false},
      },
      {
        files: await workdirArchive(dir, Boolean(manifest.labels), Boolean(reference)),
        timeoutMs: request.timeoutMs,
        onCreated: id =>
          request.track?.(async () =>
            docker
              .getContainer(id)
              .remove({force: true})
              .catch(() => {}),
          ),
      },
    )
  } catch (error) {
    if (error instanceof MlopsError) throw error
    throw new IncompatibleError(`image ${ref} cannot run the check: ${errorMessage(error).split('\n')[0].slice(0, 300)}`, {
      suggestion: 'an API image built by mlops image build api runs it; check the image name',
    })
  }

  if (run.code !== 0) {
    // serve --json says its failure on stdout ({"error": {...}}); an image whose serve predates that, in its log.
    const said = failureOf(run)
    if (run.code === 8 && said) throw new Refusal(said.message, {suggestion: said.suggestion})
    const last = run.stderr.trim().split('\n').filter(Boolean).at(-1) ?? 'no output'
    throw new IncompatibleError(
      `image ${ref} could not check ${manifest.name}@${manifest.version} (exit ${run.code}): ${quoteServerText(said?.message ?? last, 300)}`,
      {suggestion: 'an API image built by an older mlops has no serve --check: rebuild it (mlops image build api)'},
    )
  }

  return parseCheckAnswer(run.stdout, {ref, manifest, reference, tolerance: request.tolerance})
}

/** What serve said when it failed: its --json error object, else its log's failure event; text made safe to quote. */
function failureOf(run: ContainerRun): {message: string; suggestion?: string} | undefined {
  let said: {message?: unknown; suggestion?: unknown} | undefined
  try {
    said = (JSON.parse(run.stdout.trim()) as {error?: typeof said}).error
  } catch {
    said = findLogEvent(run.stderr, LOG_EVENTS.serveFailed) as typeof said
  }

  if (typeof said?.message !== 'string') return undefined
  return {
    message: quoteServerText(said.message, 600),
    ...(typeof said.suggestion === 'string' ? {suggestion: quoteServerText(said.suggestion, 300)} : {}),
  }
}

/** serve --check --json's answer, or exit 8 saying what is wrong with it. */
export function parseCheckAnswer(
  stdout: string,
  expected: {
    ref: string
    manifest: Pick<ModelManifest, 'name' | 'sha256' | 'version'>
    reference?: Pick<ReferenceRecord, 'rows' | 'runtime'>
    tolerance: number
  },
): {servedBy: string; parity?: ParityResult} {
  const bad = (why: string) =>
    new IncompatibleError(`image ${expected.ref} answered the check with something that is not a check result: ${why}`, {
      suggestion: 'check the image: an API image built by mlops image build api answers it',
    })
  let answer: Record<string, unknown>
  try {
    answer = JSON.parse(stdout.trim()) as Record<string, unknown>
  } catch {
    throw bad('not JSON')
  }

  if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) throw bad('not a JSON object')
  if (answer.stoppedBy !== 'check') throw bad('stoppedBy is not "check"')
  if (answer.sha256 !== expected.manifest.sha256) throw bad(`it names another model file (sha256 is not ${expected.manifest.sha256})`)
  const servedBy = answer.runtime
  if (typeof servedBy !== 'string' || !/^onnxruntime-node \d{1,4}\.\d{1,4}\.\d{1,4}[\w.+-]{0,40}$/.test(servedBy))
    throw bad('runtime is not "onnxruntime-node X.Y.Z"')
  if (!expected.reference) {
    if (answer.parity !== undefined) throw bad('it answered a reference set it was not given')
    return {servedBy}
  }

  const parity = answer.parity as Partial<ParityResult> | undefined
  if (typeof parity !== 'object' || parity === null) throw bad('it did not answer the reference set')
  if (parity.rows !== expected.reference.rows) throw bad(`parity.rows is not ${expected.reference.rows}`)
  if (parity.recordedBy !== expected.reference.runtime) throw bad(`parity.recordedBy is not ${expected.reference.runtime}`)
  if (parity.servedBy !== servedBy) throw bad('parity.servedBy is not its runtime')
  if (!Array.isArray(parity.drifted) || parity.drifted.length > 0) throw bad('parity.drifted is not an empty list, yet it exited 0')
  if (!Array.isArray(parity.unmatched) || parity.unmatched.length > 0) throw bad('parity.unmatched is not an empty list')
  if (parity.tolerance !== expected.tolerance) throw bad(`parity.tolerance is not ${expected.tolerance}`)
  const {maxDelta} = parity
  if (typeof maxDelta !== 'number' || !Number.isFinite(maxDelta) || maxDelta < 0 || maxDelta > expected.tolerance)
    throw bad('parity.maxDelta is not a number within the tolerance')
  return {
    servedBy,
    parity: {rows: parity.rows, recordedBy: parity.recordedBy, servedBy, tolerance: parity.tolerance, maxDelta, drifted: [], unmatched: []},
  }
}

/** /workdir as the loader leaves it: the model, its labels and reference set, readable by the image's user. */
async function workdirArchive(dir: string, labels: boolean, reference: boolean): Promise<NodeJS.ReadableStream> {
  const archive = pack()
  const files = [
    {from: 'model.onnx', to: MODEL_PATH},
    ...(labels ? [{from: 'labels.json', to: LABELS_PATH}] : []),
    ...(reference ? [{from: 'reference.json', to: REFERENCE_PATH}] : []),
  ]
  const owner = {uid: 0, gid: 0}
  archive.entry({name: MODEL_PATH.split('/')[1], type: 'directory', mode: 0o755, ...owner})
  void (async () => {
    try {
      for (const file of files) {
        const path = join(dir, file.from)
        const {size} = await stat(path)
        await new Promise<void>((resolve, reject) => {
          const entry = archive.entry({name: file.to.slice(1), size, mode: 0o644, ...owner}, error => (error ? reject(error) : resolve()))
          createReadStream(path).on('error', reject).pipe(entry)
        })
      }

      archive.finalize()
    } catch (error) {
      archive.destroy(error as Error)
    }
  })()
  return archive as unknown as NodeJS.ReadableStream
}

/** Check containers that a killed run on this host left behind (its process is gone). */
async function removeLeftoverContainers(docker: Docker): Promise<void> {
  const containers = await docker
    .listContainers({all: true, filters: {label: [`${CHECK_LABELS.role}=check`, `${CHECK_LABELS.host}=${hostname().slice(0, 63)}`]}})
    .catch(() => [])
  await Promise.all(
    containers
      .filter(container => !processExists(Number(container.Labels[CHECK_LABELS.pid])))
      .map(async container =>
        docker
          .getContainer(container.Id)
          .remove({force: true})
          .catch(() => {}),
      ),
  )
}
