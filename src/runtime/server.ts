import Fastify, {type FastifyInstance, type FastifyRequest} from 'fastify'

import {IncompatibleError, UsageError, errorMessage} from '../errors.js'
import {inFlightBudget} from './limits.js'
import {Metrics} from './metrics.js'
import {type PreparedModel, type ServedModel, loadModel, predict} from './model.js'
import type {PoolLink} from './pool.js'
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
   * One worker of several (runtime/pool.ts): the primary logs "listening" and "ready" for the
   * pod, /ready waits for every worker, /metrics sums every worker's counters, and each answer
   * says which worker gave it (x-mlops-worker: its pid).
   */
  pool?: {link: PoolLink; workers: number}
  log: (level: 'error' | 'info', msg: string, fields?: Record<string, unknown>) => void
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

/**
 * The model server: listens first (so /health answers and /ready says
 * "loading"), then loads the model and runs one warm-up inference; only then
 * is /ready 200. Speaks the original model-load API and the Open Inference
 * Protocol (KServe v2) REST API.
 */
export async function startServer(prepared: PreparedModel, options: ServerOptions): Promise<RunningServer> {
  const metrics = new Metrics({name: prepared.source.name, version: prepared.source.version, sha256: prepared.sha256})
  let model: ServedModel | undefined
  let notReady = 'loading the model'
  const link = options.pool?.link
  link?.countersFrom(() => metrics.counters())
  const ready = () => model !== undefined && (link?.allLoaded ?? true)
  const notReadyReason = () => (model ? 'waiting for the other workers to load the model' : notReady)
  const app = Fastify({bodyLimit: options.bodyLimit, logger: false, return503OnClosing: true, forceCloseConnections: 'idle'})

  const requireModel = (): ServedModel => {
    if (!model) throw Object.assign(new Error(`not ready: ${notReady}`), {statusCode: 503})
    return model
  }

  // Admission by body size: a burst of large requests is answered 503 + Retry-After rather than
  // parsed all at once (16 bodies of 1 MiB took about 600 MB, over the pod's 512Mi).
  const budget = options.inFlightBytes ?? inFlightBudget(options.bodyLimit, undefined, options.pool?.workers)
  let inFlight = 0
  metrics.inflight = {peak: 0, limit: budget}
  const admitted = new WeakMap<FastifyRequest, number>()
  if (link) {
    const pid = String(process.pid)
    app.addHook('onRequest', async (_request, reply) => {
      reply.header('x-mlops-worker', pid)
    })
  }

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
  const release = (request: FastifyRequest) => {
    inFlight -= admitted.get(request) ?? 0
    admitted.delete(request)
  }

  app.addHook('onResponse', async (request, reply) => {
    release(request)
    metrics.observe(request.routeOptions.url ?? 'unknown', request.method, reply.statusCode, reply.elapsedTime / 1000)
  })
  app.addHook('onRequestAbort', async request => {
    release(request)
  })
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

  app.get(HEALTH_PATH, async () => ({health: 'ok'}))
  // A worker's parent is the primary, the process that was started (and that a stop signals).
  const instance: ServerInstance = {pid: link ? process.ppid : process.pid, instance: process.env[API_ENV.instance] ?? null}
  app.get(INSTANCE_PATH, async () => instance)
  app.get(READY_PATH, async (_request, reply) => (ready() ? {ready: true} : reply.code(503).send({ready: false, reason: notReadyReason()})))
  app.get('/metrics', async (_request, reply) =>
    reply.type('text/plain; version=0.0.4').send(metrics.render(link ? await link.podCounters() : undefined)),
  )
  app.get('/metadata', async () => metadataOf(requireModel()))
  app.get('/label', async () => requireModel().labels ?? {})

  const original = async (m: ServedModel, data: unknown, labels: boolean) => {
    const {values, dims} = batchToTensorData(data, m.input)
    const result = await predict(m, values, dims, {labels})
    if (!labels) return {prediction: result.prediction}
    return {prediction: result.labels!.length === 1 ? result.labels![0] : result.labels}
  }

  app.get('/predict/test', async () => original(requireModel(), requireModel().sample, false))
  app.get('/predict/test/label', async () => original(requireModel(), requireModel().sample, true))
  app.post('/predict', async request => original(requireModel(), dataOf(request), false))
  app.post('/predict/label', async request => original(requireModel(), dataOf(request), true))

  // Open Inference Protocol (KServe v2) REST.
  app.get('/v2', async () => ({name: 'mlops', version: process.env.npm_package_version ?? '', extensions: []}))
  app.get('/v2/health/live', async () => ({live: true}))
  app.get('/v2/health/ready', async (_request, reply) => (ready() ? {ready: true} : reply.code(503).send({ready: false})))
  app.get<{Params: {name: string}}>('/v2/models/:name', async request => v2Metadata(namedModel(requireModel(), request.params.name)))
  app.get<{Params: {name: string}}>('/v2/models/:name/ready', async (request, reply) => {
    if (request.params.name !== prepared.source.name)
      return reply.code(404).send({error: `unknown model ${request.params.name}; this server serves ${prepared.source.name}`})
    return ready() ? {name: prepared.source.name, ready: true} : reply.code(503).send({name: prepared.source.name, ready: false})
  })
  app.post<{Params: {name: string}}>('/v2/models/:name/infer', async request =>
    v2Infer(namedModel(requireModel(), request.params.name), request.body),
  )

  await app.listen({host: options.host, port: options.port})
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : options.port
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`
  if (!link) options.log('info', LOG_EVENTS.listening, {url, model: prepared.source.modelPath})

  let closed = false
  const loaded = (async () => {
    const started = Date.now()
    const served = await loadModel(prepared, {intraOpThreads: options.intraOpThreads})
    if (closed) {
      // Closed while loading: nothing will serve this model.
      await served.engine.close()
      throw new Error('the server closed while the model was loading')
    }

    notReady = 'warming up'
    await original(served, served.sample, served.kind === 'classifier' || served.labelOutput !== undefined).catch(error => {
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
    model = served
    metrics.ready = true
    const fields = {name: served.name, version: served.version, sha256: served.sha256, kind: served.kind}
    // One of several workers: the primary says "ready" once every worker has loaded the model.
    options.log('info', link ? 'model loaded' : 'ready', {...fields, seconds: (Date.now() - started) / 1000})
    link?.loaded(fields)
    return served
  })()
  loaded.catch(error => {
    notReady = `failed to load: ${errorMessage(error)}`
  })
  return {
    app,
    url,
    loaded,
    async close() {
      closed = true
      await app.close()
      await model?.engine.close()
    },
  }
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
