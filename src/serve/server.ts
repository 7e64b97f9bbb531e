import Fastify, {type FastifyInstance, type FastifyRequest} from 'fastify'

import type {Logger} from '../cli/log.js'
import {IncompatibleError, UsageError, errorMessage} from '../errors.js'
import {givesLabels} from './answers.js'
import {inFlightBudget} from './limits.js'
import {DEFAULT_TOLERANCE, type ParityResult, measureParity, requireParity} from './parity.js'
import {Metrics} from './metrics.js'
import {type PreparedModel, type ServedModel, loadModel, predict} from './model.js'
import type {PoolLink} from './pool.js'
import {Shadow, type ShadowOptions} from './shadow.js'
import {BadRequestError, batchToTensorData, describeShape, flatToTensorData, tensorValues} from './tensors.js'
import {API_ENV, HEALTH_PATH, INSTANCE_PATH, LOG_EVENTS, READY_PATH, type ServerInstance} from '../pod/contract.js'

export interface ServerOptions {
  host: string
  port: number
  /** Largest request body in bytes; larger bodies get 413. */
  bodyLimit: number
  /** Request-body bytes in flight at once; more get 503 with Retry-After (default: sized from the memory limit). */
  inFlightBytes?: number
  /** ONNX Runtime's threads per inference (intraOpNumThreads). */
  intraOpThreads?: number
  /**
   * One worker of several (serve/pool.ts): the primary logs "listening" and "ready" for the
   * pod, /ready waits for every worker, /metrics sums every worker's counters, and each answer
   * says which worker gave it (x-mlops-worker: its pid).
   */
  pool?: {link: PoolLink; workers: number}
  /** Mirror a sample of prediction requests to a candidate and count its agreement (serve/shadow.ts). */
  shadow?: Omit<ShadowOptions, 'bodyLimit' | 'log'>
  log: Logger
}

export interface RunningServer {
  app: FastifyInstance
  url: string
  /** Settles once the model is loaded and warmed up (ready), or failed to load. */
  loaded: Promise<ServedModel>
  close(): Promise<void>
}

/** Open Inference Protocol datatypes by onnxruntime type. */
const V2_TYPES: Record<string, string> = {
  float32: 'FP32',
  float64: 'FP64',
  float16: 'FP16',
  int64: 'INT64',
  int32: 'INT32',
  int16: 'INT16',
  int8: 'INT8',
  uint8: 'UINT8',
  uint16: 'UINT16',
  bool: 'BOOL',
  string: 'BYTES',
}

/** What the routes read and the load sets: the served model once it is ready, else why not. */
interface ServerState {
  model?: ServedModel
  notReady: string
  /** Closed: a model that finishes loading now is closed at once. */
  closed: boolean
}

/**
 * The model server: listens first (so /health answers and /ready says
 * "loading"), then loads the model and runs one warm-up inference; only then
 * is /ready 200. Speaks the original model-load API and the Open Inference
 * Protocol (KServe v2) REST API.
 */
export async function startServer(prepared: PreparedModel, options: ServerOptions): Promise<RunningServer> {
  const metrics = new Metrics({name: prepared.source.name, version: prepared.source.version, sha256: prepared.sha256})
  const state: ServerState = {notReady: 'loading the model', closed: false}
  const link = options.pool?.link
  link?.countersFrom(() => metrics.counters())
  const app = Fastify({bodyLimit: options.bodyLimit, logger: false, return503OnClosing: true, forceCloseConnections: 'idle'})
  if (link) nameTheWorker(app)
  admitByBodySize(app, metrics, options)
  app.addHook('onResponse', async (request, reply) => {
    metrics.observe(request.routeOptions.url ?? 'unknown', request.method, reply.statusCode, reply.elapsedTime / 1000)
  })
  answerErrors(app, options)
  const shadow = options.shadow && new Shadow({...options.shadow, bodyLimit: options.bodyLimit, log: options.log}, metrics)
  shadow?.attach(app)
  addPodRoutes(app, state, metrics, link)
  addOriginalRoutes(app, state)
  addV2Routes(app, state, prepared.source.name, link)

  const url = await listen(app, options)
  if (!link) options.log('info', LOG_EVENTS.listening, {url, model: prepared.source.modelPath})
  const loaded = loadAndWarmUp(prepared, state, metrics, options)
  loaded.catch(error => {
    state.notReady = `failed to load: ${errorMessage(error)}`
  })
  return {
    app,
    url,
    loaded,
    async close() {
      state.closed = true
      // Mirrored requests are aborted, not awaited: a stop never waits on the candidate.
      shadow?.close()
      await app.close()
      await state.model?.engine.close()
    },
  }
}

/** Ready once the model is loaded and warmed up, in this worker and, in a pool, in every other. */
function isReady(state: ServerState, link: PoolLink | undefined): boolean {
  return state.model !== undefined && (link?.allLoaded ?? true)
}

function notReadyReason(state: ServerState): string {
  return state.model ? 'waiting for the other workers to load the model' : state.notReady
}

function requireModel(state: ServerState): ServedModel {
  if (!state.model) throw Object.assign(new Error(`not ready: ${state.notReady}`), {statusCode: 503})
  return state.model
}

/** One worker of several: each answer says which worker gave it (x-mlops-worker: its pid). */
function nameTheWorker(app: FastifyInstance): void {
  const pid = String(process.pid)
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('x-mlops-worker', pid)
  })
}

/**
 * Admission by body size: a burst of large requests is answered 503 + Retry-After rather than
 * parsed all at once (16 bodies of 1 MiB took about 600 MB, over the pod's 512Mi).
 */
function admitByBodySize(app: FastifyInstance, metrics: Metrics, options: ServerOptions): void {
  const budget = options.inFlightBytes ?? inFlightBudget(options.bodyLimit, undefined, options.pool?.workers)
  let inFlight = 0
  metrics.inflight = {peak: 0, limit: budget}
  const admitted = new WeakMap<FastifyRequest, number>()
  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'POST') return
    const declared = Number(request.headers['content-length'])
    const cost = Number.isFinite(declared) && declared >= 0 ? Math.min(declared, options.bodyLimit) : options.bodyLimit
    if (inFlight > 0 && inFlight + cost > budget) {
      return reply
        .code(503)
        .header('retry-after', '1')
        .send({error: `the server is busy: ${inFlight} bytes of requests are in flight (limit ${budget}); retry shortly`})
    }

    inFlight += cost
    metrics.inflight!.peak = Math.max(metrics.inflight!.peak, inFlight)
    admitted.set(request, cost)
  })
  const release = async (request: FastifyRequest) => {
    inFlight -= admitted.get(request) ?? 0
    admitted.delete(request)
  }

  app.addHook('onResponse', release)
  app.addHook('onRequestAbort', release)
}

/** Errors as JSON {"error": ...}: 400 for a bad request, 404 for an unknown route, 413 for a body over the limit. */
function answerErrors(app: FastifyInstance, options: ServerOptions): void {
  app.setNotFoundHandler(async (request, reply) => reply.code(404).send({error: `no route ${request.method} ${request.url}`}))
  app.setErrorHandler(async (error: Error & {statusCode?: number; code?: string}, _request, reply) => {
    const status = error instanceof BadRequestError ? 400 : (error.statusCode ?? 500)
    if (status >= 500 && status !== 503) options.log('error', 'request failed', {error: errorMessage(error)})
    const message =
      error.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? `request body is larger than the limit of ${options.bodyLimit} bytes`
        : error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error instanceof SyntaxError
          ? `malformed JSON: ${error.message}`
          : error.message
    return reply.code(status).send({error: message})
  })
}

/** What the pod contract and Prometheus ask of the server: health, instance, readiness, metrics. */
function addPodRoutes(app: FastifyInstance, state: ServerState, metrics: Metrics, link: PoolLink | undefined): void {
  app.get(HEALTH_PATH, async () => ({health: 'ok'}))
  // A worker's parent is the primary, the process that was started (and that a stop signals).
  const instance: ServerInstance = {pid: link ? process.ppid : process.pid, instance: process.env[API_ENV.instance] ?? null}
  app.get(INSTANCE_PATH, async () => instance)
  app.get(READY_PATH, async (_request, reply) =>
    isReady(state, link) ? {ready: true} : reply.code(503).send({ready: false, reason: notReadyReason(state)}),
  )
  app.get('/metrics', async (_request, reply) =>
    reply.type('text/plain; version=0.0.4').send(metrics.render(link ? await link.podCounters() : undefined)),
  )
}

/** The original model-load API. */
function addOriginalRoutes(app: FastifyInstance, state: ServerState): void {
  app.get('/metadata', async () => metadataOf(requireModel(state)))
  app.get('/label', async () => requireModel(state).labels ?? {})
  app.get('/predict/test', async () => originalPredict(requireModel(state), requireModel(state).sample, false))
  app.get('/predict/test/label', async () => originalPredict(requireModel(state), requireModel(state).sample, true))
  app.post('/predict', async request => originalPredict(requireModel(state), dataOf(request), false))
  app.post('/predict/label', async request => originalPredict(requireModel(state), dataOf(request), true))
}

/** Open Inference Protocol (KServe v2) REST. */
function addV2Routes(app: FastifyInstance, state: ServerState, name: string, link: PoolLink | undefined): void {
  app.get('/v2', async () => ({name: 'mlops', version: process.env.npm_package_version ?? '', extensions: []}))
  app.get('/v2/health/live', async () => ({live: true}))
  app.get('/v2/health/ready', async (_request, reply) => (isReady(state, link) ? {ready: true} : reply.code(503).send({ready: false})))
  app.get<{Params: {name: string}}>('/v2/models/:name', async request => v2Metadata(namedModel(requireModel(state), request.params.name)))
  app.get<{Params: {name: string}}>('/v2/models/:name/ready', async (request, reply) => {
    if (request.params.name !== name)
      return reply.code(404).send({error: `unknown model ${request.params.name}; this server serves ${name}`})
    return isReady(state, link) ? {name, ready: true} : reply.code(503).send({name, ready: false})
  })
  app.post<{Params: {name: string}}>('/v2/models/:name/infer', async request =>
    v2Infer(namedModel(requireModel(state), request.params.name), request.body),
  )
}

/** Listens on the host and port (0: any free one) and gives the URL it answers on. */
async function listen(app: FastifyInstance, options: ServerOptions): Promise<string> {
  await app.listen({host: options.host, port: options.port})
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : options.port
  return `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`
}

/** Loads the model into ONNX Runtime and runs one warm-up inference; then the server is ready. */
async function loadAndWarmUp(prepared: PreparedModel, state: ServerState, metrics: Metrics, options: ServerOptions): Promise<ServedModel> {
  const link = options.pool?.link
  const started = Date.now()
  const served = await loadModel(prepared, {intraOpThreads: options.intraOpThreads})
  if (state.closed) {
    // Closed while loading: nothing will serve this model.
    await served.engine.close()
    throw new Error('the server closed while the model was loading')
  }

  state.notReady = prepared.reference ? 'answering the reference set' : 'warming up'
  const parity = await warmUp(prepared, served).catch(async (error: unknown) => {
    await served.engine.close()
    throw error
  })
  state.model = served
  metrics.ready = true
  const fields = {
    name: served.name,
    version: served.version,
    sha256: served.sha256,
    kind: served.kind,
    ...(parity
      ? {reference: {rows: parity.rows, maxDelta: parity.maxDelta, recordedBy: parity.recordedBy, servedBy: parity.servedBy}}
      : {}),
  }
  // One of several workers: the primary says "ready" once every worker has loaded the model.
  options.log('info', link ? 'model loaded' : 'ready', {...fields, seconds: (Date.now() - started) / 1000})
  link?.loaded(fields)
  return served
}

/**
 * One warm-up inference on the sample row, then, when the version has a reference set, every row
 * of it, each answer within the tolerance of the recorded one (else exit 8, naming both runtimes).
 */
export async function warmUp(prepared: PreparedModel, served: ServedModel): Promise<ParityResult | undefined> {
  await originalPredict(served, served.sample, givesLabels(served)).catch(error => {
    // A sample the user gave that does not fit is their input; the default (zeros) failing is the model's.
    if (prepared.source.sample !== undefined) {
      throw new UsageError(`--sample does not fit the model: ${errorMessage(error)}`, {
        suggestion: "give one row of the model's input, e.g. --sample '[5.1, 3.5, 1.4, 0.2]' (MODEL_SAMPLE)",
      })
    }

    throw new IncompatibleError(`warm-up inference failed on a row of zeros: ${errorMessage(error)}`, {
      suggestion: 'pass --sample with a row the model accepts',
    })
  })
  const {reference} = prepared
  if (!reference) return undefined
  const parity = await measureParity(served, reference, prepared.source.referenceTolerance ?? DEFAULT_TOLERANCE)
  requireParity(parity, `${reference.name}@${reference.version}`)
  return parity
}

/** A prediction in the original API's shape: the labels (one, or a list for several rows), or the raw prediction. */
async function originalPredict(model: ServedModel, data: unknown, labels: boolean) {
  const {values, dims} = batchToTensorData(data, model.input)
  const result = await predict(model, values, dims, {labels})
  if (!labels) return {prediction: result.prediction}
  return {prediction: result.labels!.length === 1 ? result.labels![0] : result.labels}
}

function dataOf(request: FastifyRequest): unknown {
  const body = request.body as {data?: unknown} | undefined
  if (!body || typeof body !== 'object' || !('data' in body)) throw new BadRequestError('the body must be JSON {"data": [[...], ...]}')
  return body.data
}

function namedModel(model: ServedModel, name: string): ServedModel {
  if (name !== model.name) throw Object.assign(new Error(`unknown model ${name}; this server serves ${model.name}`), {statusCode: 404})
  return model
}

function metadataOf(model: ServedModel) {
  return {
    name: model.name,
    version: model.version ?? null,
    sha256: model.sha256,
    kind: model.kind,
    inputs: [{name: model.input.name, type: model.input.type, shape: model.input.shape}],
    outputs: model.outputs.map(o => ({name: o.name, type: o.type, shape: o.shape})),
    labels: model.labels ?? null,
    onnx: {
      irVersion: model.info.irVersion,
      opsetImports: model.info.opsetImports,
      producer: `${model.info.producerName} ${model.info.producerVersion}`.trim(),
    },
    // The original model-load server's data interface.
    data_type: model.input.type,
    data_structure: describeShape(model.input.shape),
    data_sample: model.sample,
  }
}

function v2Metadata(model: ServedModel) {
  const tensor = (t: {name: string; type: string; shape: Array<number | null>}) => ({
    name: t.name,
    datatype: V2_TYPES[t.type] ?? t.type,
    shape: t.shape.map(d => d ?? -1),
  })
  return {
    name: model.name,
    versions: model.version ? [model.version] : [],
    platform: 'onnxruntime_onnx',
    inputs: [tensor(model.input)],
    outputs: model.outputs.map(o => tensor(o)),
  }
}

async function v2Infer(model: ServedModel, body: unknown) {
  const request = body as {id?: unknown; inputs?: unknown; outputs?: unknown} | undefined
  if (!request || !Array.isArray(request.inputs) || request.inputs.length !== 1) {
    throw new BadRequestError(
      `the body must be {"inputs": [{"name": "${model.input.name}", "shape": [...], "datatype": "${V2_TYPES[model.input.type]}", "data": [...]}]}`,
    )
  }

  const input = request.inputs[0] as {name?: unknown; shape?: unknown; datatype?: unknown; data?: unknown}
  if (input.name !== model.input.name)
    throw new BadRequestError(`unknown input ${JSON.stringify(input.name)}; the model's input is ${model.input.name}`)
  // The datatype is part of the request: a missing or different one is refused, never guessed (INT8 carrying 6.3).
  const datatype = V2_TYPES[model.input.type] ?? model.input.type
  if (input.datatype !== datatype) {
    throw new BadRequestError(
      `input ${model.input.name} has datatype ${datatype}; the request says ${input.datatype === undefined ? 'nothing' : JSON.stringify(input.datatype)}`,
    )
  }

  const {values, dims} = flatToTensorData(input.data, input.shape, model.input)
  const wanted = Array.isArray(request.outputs)
    ? (request.outputs as Array<{name?: unknown}>).map(o => String(o.name))
    : model.outputs.map(o => o.name)
  const unknown = wanted.filter(name => !model.outputs.some(o => o.name === name))
  if (unknown.length > 0)
    throw new BadRequestError(`unknown output ${unknown.join(', ')}; outputs: ${model.outputs.map(o => o.name).join(', ')}`)
  const result = await predict(model, values, dims, {labels: false})
  return {
    model_name: model.name,
    model_version: model.version ?? '',
    ...(typeof request.id === 'string' ? {id: request.id} : {}),
    outputs: wanted.map(name => {
      const tensor = result.outputs[name]
      return {name, datatype: V2_TYPES[tensor.type] ?? tensor.type, shape: tensor.dims.map(Number), data: tensorValues(tensor)}
    }),
  }
}
