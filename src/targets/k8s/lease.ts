import {hostname} from 'node:os'

import {ConflictError} from '../../errors.js'
import type {KubernetesObject} from '../../manifests/render.js'
import {processExists} from '../../util/fs-atomic.js'
import {onInterruptExit} from '../deploy-guard.js'
import type {TargetIO} from '../target.js'
import {mergePatch} from './apply.js'
import type {KubeClients} from './client.js'
import {kubeError} from './errors.js'

/**
 * One release operation at a time per deployment, across machines: deploy (canary, shadow and
 * promote included), rollback, abort and delete hold a coordination.k8s.io Lease
 * `<deployment>-mlops-lock` beside it while they change it. Two CI jobs deploying the same app
 * would otherwise each remove the other's canary as a leftover, or roll over each other's rollout.
 *
 * The holder renews it every 10 s; a holder killed outright lets go 30 s after its last renewal,
 * or at once for the next run on the same host (its pid is gone). Ctrl-C releases it before exit.
 * Without permission on leases (RBAC), or before the namespace exists (a first deploy), the
 * operation goes on unguarded, and says so in the first case.
 */
export const LEASE_SUFFIX = '-mlops-lock'
export const LEASE_SECONDS = 30
const RENEW_MS = 10_000
const LEASE_LABEL = {'app.kubernetes.io/managed-by': 'mlops'}

/** What a holder is: the command, its pid and the host, as `mlops deploy pid 4242 on ci-runner-7`. */
const HOLDER = /^mlops ([a-z]{1,20}) pid ([1-9]\d{0,9}) on ([A-Za-z0-9][A-Za-z0-9._-]{0,252})$/

export interface Holder {
  command: string
  pid: number
  host: string
}

export function parseHolder(text: unknown): Holder | undefined {
  const match = typeof text === 'string' ? HOLDER.exec(text) : null
  return match ? {command: match[1], pid: Number(match[2]), host: match[3]} : undefined
}

/** This host's name as a holder carries it: [A-Za-z0-9._-] only, at most 253 characters. */
function thisHost(): string {
  const host = hostname()
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 253)
  return host || 'unknown-host'
}

/** A MicroTime as the API server parses it (RFC 3339 with exactly six fractional digits). */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z')
}

interface Lease extends KubernetesObject {
  metadata: KubernetesObject['metadata'] & {resourceVersion?: string; labels?: Record<string, string>}
  spec?: {holderIdentity?: unknown; leaseDurationSeconds?: unknown; acquireTime?: unknown; renewTime?: unknown}
}

/** What a lease read back says: nobody's (stale), a live mlops holder, or an object mlops did not make. */
export type LeaseState =
  {state: 'stale'} | {state: 'held'; holder: Holder; renewedSecondsAgo: number; durationSeconds: number} | {state: 'foreign'}

export function leaseState(lease: Lease, now: number, me: {pid: number; host: string}): LeaseState {
  const holder = parseHolder(lease.spec?.holderIdentity)
  const duration = Number(lease.spec?.leaseDurationSeconds)
  const renewed = typeof lease.spec?.renewTime === 'string' ? Date.parse(lease.spec.renewTime) : Number.NaN
  if (lease.metadata.labels?.['app.kubernetes.io/managed-by'] !== 'mlops') return {state: 'foreign'}
  // A holder that is not one of ours' words, or times that are not times: no lock anyone holds.
  if (!holder || !Number.isFinite(renewed) || !Number.isSafeInteger(duration) || duration <= 0 || duration > 3600) return {state: 'stale'}
  if (now - renewed > duration * 1000) return {state: 'stale'}
  if (holder.host === me.host && holder.pid !== me.pid && !processExists(holder.pid)) return {state: 'stale'}
  return {state: 'held', holder, renewedSecondsAgo: Math.max(0, Math.round((now - renewed) / 1000)), durationSeconds: duration}
}

export const describeHolder = (holder: Holder) => `mlops ${holder.command} (pid ${holder.pid} on ${holder.host})`

/** Why the lease `lease` does not stop this run, or the refusal that it does. */
export function judgeLease(lease: Lease, now: number, me: {pid: number; host: string}): 'stale' | ConflictError {
  const name = `${lease.metadata.namespace}/${lease.metadata.name}`
  const state = leaseState(lease, now, me)
  if (state.state === 'stale') return 'stale'
  if (state.state === 'foreign')
    return new ConflictError(`lease ${name} exists and was not made by mlops: it cannot tell whether a release is under way`, {
      suggestion: `delete it (kubectl delete lease -n ${lease.metadata.namespace} ${lease.metadata.name}) if nothing uses it`,
    })
  return new ConflictError(
    `another ${describeHolder(state.holder)} is changing ${lease.metadata.namespace}/${lease.metadata.name.slice(0, -LEASE_SUFFIX.length)} (lease renewed ${state.renewedSecondsAgo}s ago)`,
    {
      suggestion: `wait for it, or stop it (Ctrl-C, or cancel its CI job: it removes its own canary or shadow); one killed outright lets go ${state.durationSeconds}s after its last renewal`,
    },
  )
}

/** The live holder of the deployment's lease, for mlops status: null when none (or on any error: status does not fail for it). */
export async function leaseHolder(
  clients: KubeClients,
  where: {name: string; namespace: string},
): Promise<{holder: string; renewedSecondsAgo: number} | null> {
  const lease = await clients.objects
    .read<Lease>({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {name: `${where.name}${LEASE_SUFFIX}`, namespace: where.namespace},
    })
    .catch(() => undefined)
  if (!lease) return null
  const state = leaseState(lease, Date.now(), {pid: process.pid, host: thisHost()})
  return state.state === 'held' ? {holder: describeHolder(state.holder), renewedSecondsAgo: state.renewedSecondsAgo} : null
}

export interface ClusterLock {
  /**
   * Renews the lease now and throws LeaseLostError (exit 4) when another run has taken it over:
   * called before each change a long operation makes (a canary step, the promotion), so that a run
   * that was suspended past the lease's 30 s (a laptop asleep) changes nothing more.
   */
  ensureHeld(): Promise<void>
  /** Gives the lease back (only while it is still this run's). */
  release(): Promise<void>
}

/** This run's lease was taken over by another run: it changes nothing more, and removes nothing (the canary may be the other's now). */
export class LeaseLostError extends ConflictError {}

const code = (error: unknown) => (error as {code?: number}).code

/**
 * Takes the lease of the deployment `where` for `command` (exit 4 while another live run holds it),
 * renews it until released, and releases it on Ctrl-C too.
 */
export async function takeClusterLock(
  clients: KubeClients,
  where: {name: string; namespace: string},
  command: string,
  io: Pick<TargetIO, 'note'>,
): Promise<ClusterLock> {
  const name = `${where.name}${LEASE_SUFFIX}`
  const host = thisHost()
  const identity = `mlops ${command} pid ${process.pid} on ${host}`
  const header = {apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: {name, namespace: where.namespace}}
  let acquired = microTime(new Date())
  const body = (resourceVersion?: string): Lease => ({
    ...header,
    metadata: {
      ...header.metadata,
      labels: {...LEASE_LABEL, 'app.kubernetes.io/name': where.name},
      ...(resourceVersion ? {resourceVersion} : {}),
    },
    spec: {holderIdentity: identity, leaseDurationSeconds: LEASE_SECONDS, acquireTime: acquired, renewTime: microTime(new Date())},
  })
  const unguarded: ClusterLock = {ensureHeld: async () => {}, release: async () => {}}

  let held: Lease
  try {
    held = await clients.objects.create(body())
  } catch (error) {
    if (code(error) === 404) return unguarded // no namespace yet: a first deploy, nothing to guard
    if (code(error) === 403) {
      io.note(
        `not locked: this user may not create leases in ${where.namespace}, so another mlops run could change ${where.name} at the same time`,
      )
      return unguarded
    }
    if (code(error) !== 409) throw kubeError(error, clients.server, `taking lease ${where.namespace}/${name}`)
    const current = await clients.objects.read<Lease>(header).catch((readError: unknown) => {
      throw kubeError(readError, clients.server, `reading lease ${where.namespace}/${name}`)
    })
    const verdict = judgeLease(current, Date.now(), {pid: process.pid, host})
    if (verdict !== 'stale') throw verdict
    try {
      acquired = microTime(new Date())
      held = await clients.objects.replace(body(current.metadata.resourceVersion))
    } catch (replaceError) {
      // Another run took it over first (409), or released it meanwhile (404): either way, not ours.
      if (code(replaceError) === 409 || code(replaceError) === 404)
        throw new ConflictError(`another mlops run took lease ${where.namespace}/${name} at the same moment`, {
          suggestion: 'wait for it to finish, then run mlops status',
        })
      throw kubeError(replaceError, clients.server, `taking lease ${where.namespace}/${name}`)
    }
  }

  let lost = false
  const renewOnce = async () => {
    try {
      // A merge patch, not a PUT: a Lease PUT to a name that is gone creates it again (leases
      // allow create-on-update), which would take back a lease another run finished with. The
      // resourceVersion in the patch is its precondition: taken over meanwhile, 409.
      held = await mergePatch<Lease>(clients, {
        ...header,
        metadata: {...header.metadata, resourceVersion: held.metadata.resourceVersion},
        spec: {renewTime: microTime(new Date())},
      })
    } catch (error) {
      // Lost (taken over after 30 s without a renewal: this process was stopped), or the API
      // server is away for a moment: the next renewal tries again.
      if (code(error) === 409 || code(error) === 404) {
        lost = true
        clearInterval(timer)
      }
    }
  }
  // One renewal at a time: two at once would send the same resourceVersion, and the second's 409 is not a loss.
  let renewing: Promise<void> | undefined
  const renew = async () => {
    renewing ??= renewOnce().finally(() => {
      renewing = undefined
    })
    return renewing
  }
  // In the background, a loss is said once; the run stops at its next change (ensureHeld).
  const timer = setInterval(
    () =>
      void renew().then(() => {
        if (lost)
          io.note(
            `lost lease ${where.namespace}/${name}: this run was not renewing it for ${LEASE_SECONDS}s, and another may be changing ${where.name}; it changes nothing more`,
          )
      }),
    RENEW_MS,
  )
  timer.unref()
  const ensureHeld = async () => {
    if (!lost) await renew()
    if (!lost) return
    const current = await clients.objects.read<Lease>(header).catch(() => undefined)
    const state = current && leaseState(current, Date.now(), {pid: process.pid, host})
    const taker = state?.state === 'held' ? `another ${describeHolder(state.holder)}` : 'another run'
    throw new LeaseLostError(
      `lost lease ${where.namespace}/${name} to ${taker}: this run was not renewing it for ${LEASE_SECONDS}s (suspended?) and changes nothing more`,
      {suggestion: `run mlops status -n ${where.namespace} to see what the other run left, then deploy again`},
    )
  }
  let released = false
  const release = async () => {
    if (released) return
    released = true
    clearInterval(timer)
    unhook()
    if (lost) return
    await clients.objects
      .delete(header, undefined, undefined, undefined, undefined, undefined, {
        preconditions: {resourceVersion: held.metadata.resourceVersion},
      })
      .catch(() => {}) // already gone or taken over: nothing of ours to give back; a failure lapses in 30 s
  }
  const unhook = onInterruptExit(release)
  return {ensureHeld, release}
}

/** `work` under the lease of the deployment `where` (see takeClusterLock). */
export async function withClusterLock<T>(
  clients: KubeClients,
  where: {name: string; namespace: string},
  command: string,
  io: Pick<TargetIO, 'note'>,
  work: () => Promise<T>,
): Promise<T> {
  const lock = await takeClusterLock(clients, where, command, io)
  try {
    return await work()
  } finally {
    await lock.release()
  }
}
