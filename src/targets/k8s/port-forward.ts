import {type V1Deployment, type V1Pod, PortForward} from '../../vendor/kubernetes.js'
import {type AddressInfo, type Server, type Socket, createServer} from 'node:net'
import {EventEmitter} from 'node:events'

import {type MlopsError, NotFoundError, PermissionError, UnavailableError, errorMessage} from '../../errors.js'
import {API_PORT_NAME} from '../../pod/contract.js'
import type {KubeClients} from './client.js'
import {kubeError} from './errors.js'
import {revisions} from './history.js'

/** A local listener whose connections each reach the pod's port through the API server. */
export interface PortForwarding {
  /** http://127.0.0.1:PORT, for the local end. */
  url: string
  namespace: string
  pod: string
  port: number
  /** Connections opened so far, and the last failure reported by the API server or the node, if any. */
  connections: number
  lastError?: MlopsError
  close(): Promise<void>
}

function isReady(pod: V1Pod): boolean {
  return (
    !pod.metadata?.deletionTimestamp &&
    pod.status?.phase === 'Running' &&
    (pod.status.conditions ?? []).some(c => c.type === 'Ready' && c.status === 'True')
  )
}

/**
 * A ready pod of the Deployment and the API container's port (the one named
 * http, else the first declared), as kubectl port-forward deployment/NAME
 * picks it, but preferring pods of the current revision, so a test request
 * during a rollout reaches the model that is being rolled out.
 */
export async function readyPod(clients: KubeClients, deployment: V1Deployment): Promise<{pod: string; port: number}> {
  const namespace = deployment.metadata!.namespace!
  const name = deployment.metadata!.name!
  const selector = Object.entries(deployment.spec?.selector?.matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',')
  let pods: V1Pod[]
  let currentHash: string | undefined
  try {
    pods = (await clients.core.listNamespacedPod({namespace, labelSelector: selector})).items
    currentHash = (await revisions(clients, deployment)).find(r => r.current)?.replicaSet.metadata?.labels?.['pod-template-hash']
  } catch (error) {
    throw kubeError(error, clients.server, `listing the pods of deployment ${namespace}/${name}`)
  }

  const ready = pods
    .filter(pod => isReady(pod))
    .sort(
      (a, b) =>
        Number(b.metadata?.labels?.['pod-template-hash'] === currentHash) -
          Number(a.metadata?.labels?.['pod-template-hash'] === currentHash) ||
        String(b.metadata?.creationTimestamp ?? '').localeCompare(String(a.metadata?.creationTimestamp ?? '')),
    )
  const pod = ready[0]
  if (!pod) {
    throw new UnavailableError(
      `deployment ${namespace}/${name} has no ready pod (${pods.length} pod${pods.length === 1 ? '' : 's'}, none ready)`,
      {
        suggestion: 'see why with mlops status; mlops deploy waits for the rollout',
      },
    )
  }

  const containers = pod.spec?.containers ?? []
  const ports = containers.flatMap(c => c.ports ?? [])
  const port = (ports.find(p => p.name === API_PORT_NAME) ?? ports[0])?.containerPort
  if (!port)
    throw new NotFoundError(`pod ${namespace}/${pod.metadata!.name} declares no container port to forward to`, {
      suggestion: "declare the API container's port (ports: [{name: http, containerPort: 8000}])",
    })
  return {pod: pod.metadata!.name!, port}
}

/** The API server's refusal of the WebSocket upgrade ("Unexpected server response: 403"), as our errors. */
export function upgradeError(error: unknown, what: string): MlopsError {
  const message = errorMessage((error as {error?: unknown})?.error ?? error) || String((error as {message?: unknown})?.message ?? error)
  const status = Number(/server response: (\d{3})/.exec(message)?.[1])
  if (status === 401 || status === 403)
    return new PermissionError(`${what}: the API server refused (${status})`, {
      suggestion: 'port-forward needs the create verb on pods/portforward in the namespace',
    })
  if (status === 404)
    return new NotFoundError(`${what}: the pod is gone (404)`, {suggestion: 'run the command again to pick another ready pod'})
  return new UnavailableError(`${what}: ${message}`, {
    suggestion: "the API server must reach the node's kubelet (check mlops status and the node)",
  })
}

interface WebSocketLike {
  close(): void
  on?(event: string, listener: () => void): void
  onclose?: (() => void) | null
}

/**
 * One WebSocket through the API server to the pod's port, opened before a
 * local connection needs it (so the TLS and upgrade hand-shakes are not paid
 * inside a request's latency), then bound to one accepted socket. client-node's
 * PortForward only calls write() on its output and error streams and listens
 * to data/end on its input, so those are thin shims that follow the socket.
 */
interface Tunnel {
  attach(socket: Socket): void
  close(): void
  readonly dead: boolean
}

/**
 * Listens on 127.0.0.1 (an ephemeral port unless `localPort` is given) and
 * forwards every accepted connection to `pod:port` over its own WebSocket
 * through the API server (client-node's PortForward, protocol
 * v4.channel.k8s.io). `warm` tunnels are opened up front, in parallel: a
 * refusal (RBAC, a pod that is gone) fails here, before any request, and a
 * load test does not pay one hand-shake per connection in its latency. What
 * the node reports on the error channel becomes `lastError` and ends the
 * connection.
 */
export async function forwardPort(
  clients: KubeClients,
  target: {namespace: string; pod: string; port: number; localPort?: number; warm?: number},
): Promise<PortForwarding> {
  const {namespace, pod, port} = target
  const what = `port-forward to ${namespace}/${pod}:${port}`
  const portForward = new PortForward(clients.config, true)
  const tunnels = new Set<Tunnel>()
  const sockets = new Set<Socket>()
  const forwarding: PortForwarding = {url: '', namespace, pod, port, connections: 0, close}

  async function openTunnel(): Promise<Tunnel> {
    let socket: Socket | undefined
    let dead = false
    const early: Buffer[] = []
    const nodeErrors: Buffer[] = []
    const input = new EventEmitter() as EventEmitter & {readableEncoding: null}
    input.readableEncoding = null
    const output = {
      write(chunk: Buffer) {
        if (socket) socket.write(chunk)
        else early.push(chunk)
        return true
      },
    }
    const errors = {
      write(chunk: Buffer) {
        // PortForward passes on the channel's first frame with its port bytes stripped: empty.
        if (chunk.length === 0) return true
        nodeErrors.push(chunk)
        forwarding.lastError = new UnavailableError(`${what}: ${Buffer.concat(nodeErrors).toString('utf8').trim()}`, {
          suggestion: 'is the server in the pod listening on that port? mlops status',
        })
        end()
        return true
      },
    }
    let ws: WebSocketLike | undefined
    function end(): void {
      if (dead) return
      dead = true
      tunnels.delete(tunnel)
      ws?.close()
      socket?.end()
    }

    const tunnel: Tunnel = {
      get dead() {
        return dead
      },
      attach(accepted) {
        socket = accepted
        for (const chunk of early.splice(0)) accepted.write(chunk)
        if (dead) {
          accepted.destroy()
          return
        }

        accepted.on('data', chunk => input.emit('data', chunk))
        accepted.on('end', () => end())
        accepted.on('close', () => end())
      },
      close: end,
    }
    tunnels.add(tunnel)
    try {
      // client-node types the socket through isomorphic-ws, which is `any` here (no @types/ws): the
      // annotation is what narrows ws for the lines below.
      const opened: WebSocketLike = await portForward.portForward(namespace, pod, [port], output as never, errors as never, input as never)
      ws = opened
    } catch (error) {
      tunnels.delete(tunnel)
      throw upgradeError(error, what)
    }

    if (typeof ws.on === 'function') ws.on('close', end)
    else ws.onclose = end
    if (dead) ws.close()
    return tunnel
  }

  const pool: Tunnel[] = []
  function connect(socket: Socket): void {
    forwarding.connections++
    sockets.add(socket)
    socket.setNoDelay(true)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    // A warm tunnel the server closed meanwhile is skipped.
    let warmed: Tunnel | undefined
    while (!warmed && pool.length > 0) {
      const candidate = pool.shift()!
      if (!candidate.dead) warmed = candidate
    }

    const next = warmed ? Promise.resolve(warmed) : openTunnel()
    next.then(
      tunnel => tunnel.attach(socket),
      (error: unknown) => {
        forwarding.lastError = error as MlopsError
        socket.destroy()
      },
    )
  }

  // Opened together, awaited together: the first refusal is the command's error.
  const warm = Array.from({length: Math.max(0, target.warm ?? 1)}, () => openTunnel())
  const opened = await Promise.allSettled(warm)
  const refused = opened.find(result => result.status === 'rejected')
  if (refused) {
    for (const result of opened) if (result.status === 'fulfilled') result.value.close()
    throw refused.reason
  }

  for (const result of opened) if (result.status === 'fulfilled') pool.push(result.value)

  const server: Server = createServer(connect)
  await new Promise<void>((resolve, reject) => {
    server.once('error', error =>
      reject(new UnavailableError(`${what}: cannot listen on 127.0.0.1:${target.localPort ?? 0}: ${errorMessage(error)}`)),
    )
    server.listen(target.localPort ?? 0, '127.0.0.1', () => resolve())
  })
  forwarding.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  async function close(): Promise<void> {
    for (const tunnel of tunnels) tunnel.close()
    for (const socket of sockets) socket.destroy()
    await new Promise<void>(resolve => server.close(() => resolve()))
  }

  return forwarding
}
