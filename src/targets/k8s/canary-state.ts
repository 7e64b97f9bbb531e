/**
 * A paused canary (deploy --canary --pause): what mlops promote needs to go on, kept on the
 * canary's Deployment as an annotation, so that a CI job or a person on another machine can
 * continue it. Read back, it is hostile input: every field is checked as strictly as the flag it
 * came from, a values file must lie inside the project, and the release promote renders must be
 * the one that was canaried (the hash of the canary's pod template), or nothing is applied.
 */
import {createHash} from 'node:crypto'
import {isAbsolute, relative, resolve} from 'node:path'

import {IntegrityError} from '../../errors.js'
import type {KubernetesObject} from '../../manifests/render.js'
import {DELIVERIES, type DeliveryRequest} from '../../pod/contract.js'
import type {StoreOverrides} from '../../store/open.js'
import {parseModelRef} from '../../store/names.js'
import {type CanaryGates, parseSteps} from '../canary-plan.js'

export interface PausedCanary {
  /** NAME@VERSION being canaried. */
  model: string
  /** sha256 of the canary's pod template as rendered. */
  template: string
  /** The step it stopped after, percent. */
  pausedAt: number
  /** The steps still to go, ending with 100 (the promotion). */
  remaining: number[]
  intervalMs: number
  gates: CanaryGates
  /** Pause again after each step (deploy --pause). */
  pause: boolean
  /** The deploy's inputs that shape the release, so that promote renders the same one. */
  request: {
    set: string[]
    values: string[]
    image: {repository?: string; tag?: string}
    delivery?: DeliveryRequest
    port: number
    store: StoreOverrides
  }
}

/** The canary's pod template, hashed: the identity of what was canaried. */
export function templateHash(canary: KubernetesObject): string {
  const template = (canary.spec as {template?: unknown}).template
  return createHash('sha256').update(JSON.stringify(template)).digest('hex')
}

const KEYS = ['model', 'template', 'pausedAt', 'remaining', 'intervalMs', 'gates', 'pause', 'request']
const REQUEST_KEYS = ['set', 'values', 'image', 'delivery', 'port', 'store']
const STORE_KEYS = ['store', 'endpoint', 'anonymous', 'project', 'timeout']

/** The annotation's text read strictly: anything else is exit 5, naming the field, quoting nothing of it. */
export function parsePausedCanary(text: string, where: string): PausedCanary {
  const bad = (field: string) =>
    new IntegrityError(`the paused canary's record on ${where} is not one mlops wrote (${field})`, {
      suggestion: 'mlops abort removes the canary; then deploy --canary again',
    })
  let record: Record<string, unknown>
  try {
    record = JSON.parse(text.slice(0, 64 * 1024)) as Record<string, unknown>
  } catch {
    throw bad('not JSON')
  }

  const object = (value: unknown, keys: string[], field: string) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(field)
    const unknown = Object.keys(value).find(key => !keys.includes(key))
    if (unknown !== undefined) throw bad(`${field}: unknown field`)
    return value as Record<string, unknown>
  }

  const strings = (value: unknown, field: string, max = 100) => {
    if (!Array.isArray(value) || value.length > max || !value.every(item => typeof item === 'string' && item.length <= 1000))
      throw bad(field)
    return value as string[]
  }

  const share = (value: unknown, field: string, max = 1) => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > max) throw bad(field)
    return value
  }

  object(record, KEYS, 'the record')
  const {model, template, pausedAt, remaining, intervalMs, gates, pause} = record
  if (typeof model !== 'string' || model.length > 200) throw bad('model')
  try {
    const ref = parseModelRef(model)
    if (`${ref.name}@${ref.ref}` !== model) throw new Error('not NAME@VERSION')
  } catch {
    throw bad('model')
  }

  if (typeof template !== 'string' || !/^[0-9a-f]{64}$/.test(template)) throw bad('template')
  if (typeof pausedAt !== 'number' || !(pausedAt > 0 && pausedAt < 100)) throw bad('pausedAt')
  if (!Array.isArray(remaining) || remaining.length === 0 || remaining.length > 11 || !remaining.every(step => typeof step === 'number'))
    throw bad('remaining')
  let steps: number[]
  try {
    steps = parseSteps(remaining)
  } catch {
    throw bad('remaining')
  }

  if (remaining.at(-1) !== 100 || steps.some(step => step <= pausedAt)) throw bad('remaining')
  if (typeof intervalMs !== 'number' || !Number.isInteger(intervalMs) || intervalMs < 1 || intervalMs > 3_600_000) throw bad('intervalMs')
  const g = object(gates, ['minAgreement', 'maxErrorRateIncrease', 'maxP99Ratio'], 'gates')
  if (typeof pause !== 'boolean') throw bad('pause')
  const request = object(record.request, REQUEST_KEYS, 'request')
  const image = object(request.image, ['repository', 'tag'], 'request.image')
  if (![image.repository, image.tag].every(value => value === undefined || (typeof value === 'string' && value.length <= 500)))
    throw bad('request.image')
  if (request.delivery !== undefined && !DELIVERIES.includes(request.delivery as DeliveryRequest)) throw bad('request.delivery')
  if (typeof request.port !== 'number' || !Number.isInteger(request.port) || request.port < 0 || request.port > 65_535)
    throw bad('request.port')
  const store = object(request.store, STORE_KEYS, 'request.store')
  for (const key of ['store', 'endpoint', 'project'])
    if (store[key] !== undefined && (typeof store[key] !== 'string' || store[key].length > 1000)) throw bad(`request.store.${key}`)
  if (store.anonymous !== undefined && store.anonymous !== true) throw bad('request.store.anonymous')
  if (store.timeout !== undefined && (typeof store.timeout !== 'number' || !Number.isInteger(store.timeout) || store.timeout < 1))
    throw bad('request.store.timeout')
  return {
    model,
    template,
    pausedAt,
    remaining: steps,
    intervalMs,
    gates: {
      ...(g.minAgreement === undefined ? {} : {minAgreement: share(g.minAgreement, 'gates.minAgreement')}),
      maxErrorRateIncrease: share(g.maxErrorRateIncrease, 'gates.maxErrorRateIncrease'),
      maxP99Ratio: share(g.maxP99Ratio, 'gates.maxP99Ratio', 1000),
    },
    pause,
    request: {
      set: strings(request.set, 'request.set'),
      values: strings(request.values, 'request.values', 20),
      image: image,
      ...(request.delivery === undefined ? {} : {delivery: request.delivery as DeliveryRequest}),
      port: request.port,
      store: store,
    },
  }
}

/** A values file named by the record, only inside the project folder (the record must not make promote read another file). */
export function projectValuesFile(projectDir: string, file: string, where: string): string {
  const path = resolve(projectDir, file)
  const inside = relative(projectDir, path)
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside))
    throw new IntegrityError(`the paused canary's record on ${where} names a values file outside the project`, {
      suggestion: 'mlops abort removes the canary; then deploy --canary again',
    })
  return path
}
