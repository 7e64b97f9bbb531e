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

/** What the steps of one port-forward share: where it goes, what it reports, and what it holds open. */
interface Forward {
  portForward: PortForward
  namespace: string
  pod: string
  port: number
  /** "port-forward to NAMESPACE/POD:PORT", the start of its error messages. */
  what: string
  forwarding: PortForwarding
  /** Every tunnel not ended yet (warm, or bound to a connection), for close(). */
  tunnels: Set<Tunnel>
  /** Tunnels opened ahead, waiting for a connection. */
  warm: Tunnel[]
  sockets: Set<Socket>
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
  const forward: Forward = {
    portForward: new PortForward(clients.config, true),
    namespace,
    pod,
    port,
    what: `port-forward to ${namespace}/${pod}:${port}`,
    forwarding: {url: '', namespace, pod, port, connections: 0, close: async () => closeForward(forward, server)},
    tunnels: new Set(),
    warm: [],
    sockets: new Set(),
  }
  forward.warm.push(...(await openWarmTunnels(forward, target.warm ?? 1)))
  const server = await listenLocally(forward, target.localPort ?? 0)
  forward.forwarding.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return forward.forwarding
}

/** Opened together, awaited together: the first refusal is the command's error, and the tunnels that did open are closed. */
async function openWarmTunnels(forward: Forward, count: number): Promise<Tunnel[]> {
  const opened = await Promise.allSettled(Array.from({length: Math.max(0, count)}, () => openTunnel(forward)))
  const tunnels = opened.flatMap(result => (result.status === 'fulfilled' ? [result.value] : []))
  const refused = opened.find(result => result.status === 'rejected')
  if (refused) {
    for (const tunnel of tunnels) tunnel.close()
    throw refused.reason
  }

  return tunnels
}

async function listenLocally(forward: Forward, localPort: number): Promise<Server> {
  const server = createServer(socket => acceptConnection(forward, socket))
  await new Promise<void>((resolve, reject) => {
    server.once('error', error =>
      reject(new UnavailableError(`${forward.what}: cannot listen on 127.0.0.1:${localPort}: ${errorMessage(error)}`)),
    )
    server.listen(localPort, '127.0.0.1', () => resolve())
  })
  return server
}

/** A local connection gets a warm tunnel, else a new one; a tunnel that cannot open ends the connection. */
function acceptConnection(forward: Forward, socket: Socket): void {
  forward.forwarding.connections++
  forward.sockets.add(socket)
  socket.setNoDelay(true)
  socket.on('close', () => forward.sockets.delete(socket))
  socket.on('error', () => socket.destroy())
  // A warm tunnel the server closed meanwhile is skipped.
  let warmed: Tunnel | undefined
  while (!warmed && forward.warm.length > 0) {
    const candidate = forward.warm.shift()!
    if (!candidate.dead) warmed = candidate
  }

  const next = warmed ? Promise.resolve(warmed) : openTunnel(forward)
  next.then(
    tunnel => tunnel.attach(socket),
    (error: unknown) => {
      forward.forwarding.lastError = error as MlopsError
      socket.destroy()
    },
  )
}

async function openTunnel(forward: Forward): Promise<Tunnel> {
  const tunnel = new Tunnel(forward)
  forward.tunnels.add(tunnel)
  let ws: WebSocketLike
  try {
    ws = await forward.portForward.portForward(
      forward.namespace,
      forward.pod,
      [forward.port],
      tunnel.output as never,
      tunnel.errors as never,
      tunnel.input as never,
    )
  } catch (error) {
    forward.tunnels.delete(tunnel)
    throw upgradeError(error, forward.what)
  }

  tunnel.bind(ws)
  return tunnel
}

async function closeForward(forward: Forward, server: Server): Promise<void> {
  for (const tunnel of forward.tunnels) tunnel.close()
  for (const socket of forward.sockets) socket.destroy()
  await new Promise<void>(resolve => server.close(() => resolve()))
}

/**
 * One WebSocket through the API server to the pod's port, opened before a
 * local connection needs it (so the TLS and upgrade hand-shakes are not paid
 * inside a request's latency), then bound to one accepted socket. client-node's
 * PortForward only calls write() on its output and error streams and listens
 * to data/end on its input, so those are thin shims that follow the socket.
 */
class Tunnel {
  readonly input = Object.assign(new EventEmitter(), {readableEncoding: null})
  /** The pod's bytes: to the socket, or kept until one is attached. */
  readonly output = {
    write: (chunk: Buffer) => {
      if (this.socket) this.socket.write(chunk)
      else this.early.push(chunk)
      return true
    },
  }

  /** The node's error channel: what it says becomes the port-forward's lastError, and ends the tunnel. */
  readonly errors = {
    write: (chunk: Buffer) => {
      // PortForward passes on the channel's first frame with its port bytes stripped: empty.
      if (chunk.length === 0) return true
      this.nodeErrors.push(chunk)
      this.forward.forwarding.lastError = new UnavailableError(
        `${this.forward.what}: ${Buffer.concat(this.nodeErrors).toString('utf8').trim()}`,
        {suggestion: 'is the server in the pod listening on that port? mlops status'},
      )
      this.close()
      return true
    },
  }

  private socket?: Socket
  private ws?: WebSocketLike
  private ended = false
  private readonly early: Buffer[] = []
  private readonly nodeErrors: Buffer[] = []

  constructor(private readonly forward: Forward) {}

  get dead(): boolean {
    return this.ended
  }

  attach(accepted: Socket): void {
    this.socket = accepted
    for (const chunk of this.early.splice(0)) accepted.write(chunk)
    if (this.ended) {
      accepted.destroy()
      return
    }

    accepted.on('data', chunk => this.input.emit('data', chunk))
    accepted.on('end', () => this.close())
    accepted.on('close', () => this.close())
  }

  /** The WebSocket, once open: its close ends the tunnel, and a tunnel ended meanwhile closes it. */
  bind(ws: WebSocketLike): void {
    this.ws = ws
    if (typeof ws.on === 'function') ws.on('close', () => this.close())
    else ws.onclose = () => this.close()
    if (this.ended) ws.close()
  }

  close(): void {
    if (this.ended) return
    this.ended = true
    this.forward.tunnels.delete(this)
    this.ws?.close()
    this.socket?.end()
  }
}
