import {execFileSync} from 'node:child_process'
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {type Cluster, kubeCluster} from './k8s.js'

const SCRIPTS = join(import.meta.dirname, 'node')

export interface RealNode {
  stateDir: string
  nodeName: string
  /** key=value:effect; real-node pods tolerate it, so the fast tests' pods stay on kwok's node. */
  taint: string
  containerdSocket: string
  ctr: string
  /** containerd's registry host folder (hosts.toml per registry). */
  certsDir: string
  bridge: string
  /** The node's address on the pod bridge: a server pods need listens here. */
  gateway: string
  subnet: string
  startupSeconds: number
}

let node: RealNode | undefined

/**
 * A real node (kubelet + containerd + runc) joined to the test control plane,
 * started once per run on demand: pods really run there. Built into the test
 * cache with the control plane's binaries; start-up takes a few seconds.
 */
export function realNode(): {cluster: Cluster; node: RealNode} {
  const cluster = kubeCluster()
  node ??= JSON.parse(
    execFileSync('bash', [join(SCRIPTS, 'up.sh'), cluster.stateDir], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {...process.env, MLOPS_NODE_WATCH_PID: String(process.pid)},
    }),
  ) as RealNode
  return {cluster, node}
}

/** Lets the node's containerd pull from a plain-HTTP registry on this machine. */
export function trustRegistry(target: RealNode, address: string): void {
  const dir = join(target.certsDir, address)
  mkdirSync(dir, {recursive: true})
  writeFileSync(
    join(dir, 'hosts.toml'),
    `server = "http://${address}"\n\n[host."http://${address}"]\n  capabilities = ["pull", "resolve"]\n`,
  )
}

/** ctr against the node's containerd (k8s.io namespace): images, tasks, content. */
export function nodeCtr(target: RealNode, args: string[]): string {
  // stderr kept: ctr warns about cgroup v1 on every call.
  return execFileSync(target.ctr, ['-a', target.containerdSocket, '-n', 'k8s.io', ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

/** Removes every image from `registry` on the node, by every name containerd keeps for it (repo:tag, repo@digest, the image id), content too. */
export function removeNodeImages(target: RealNode, registry: string): void {
  const rows = nodeCtr(target, ['images', 'ls'])
    .split('\n')
    .slice(1)
    .map(line => line.split(/\s+/))
    .filter(row => row.length > 3)
  const ours = new Set(rows.filter(([ref]) => ref.startsWith(registry)).map(row => row[2]))
  const refs = rows.filter(row => ours.has(row[2])).map(([ref]) => ref)
  if (refs.length > 0) nodeCtr(target, ['images', 'rm', '--sync', ...refs])
}

export function stopRealNode(): void {
  if (node) execFileSync('bash', [join(SCRIPTS, 'down.sh'), node.stateDir], {stdio: ['ignore', 'ignore', 'inherit']})
  node = undefined
}
