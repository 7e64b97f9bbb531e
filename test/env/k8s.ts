import {execFileSync} from 'node:child_process'
import {join} from 'node:path'

const SCRIPTS = join(import.meta.dirname, 'k8s')

export interface Cluster {
  stateDir: string
  server: string
  kubeconfig: string
  restrictedKubeconfig: string
  restrictedUser: string
  nodeName: string
}

let cluster: Cluster | undefined

/**
 * The binaries of the control plane and of the real node (kubelet,
 * containerd), built once into the test cache before any test starts (about
 * 10 min cold on 2 cores; seconds when cached). Starting a cluster inside a
 * test's hook then only starts processes, so no hook's budget has to hold a
 * Go build that whichever file runs first would otherwise pay for.
 */
export function ensureKubeBinaries(): void {
  execFileSync('bash', [join(SCRIPTS, 'build.sh')], {stdio: ['ignore', 'inherit', 'inherit']})
}

/**
 * A real Kubernetes control plane on 127.0.0.1 (etcd, kube-apiserver,
 * controller manager, scheduler, kwok with one fake node), started once per
 * run on demand. The binaries are built from the Go module proxy on first
 * use (about 7.5 min on 2 cores) into the test cache, then reused; start-up
 * takes about 4 s.
 */
export function kubeCluster(): Cluster {
  cluster ??= JSON.parse(
    execFileSync('bash', [join(SCRIPTS, 'up.sh')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {...process.env, MLOPS_K8S_WATCH_PID: String(process.pid)},
    }),
  ) as Cluster
  return cluster
}

export function stopKubeCluster(): void {
  if (cluster) execFileSync('bash', [join(SCRIPTS, 'down.sh'), cluster.stateDir], {stdio: ['ignore', 'ignore', 'inherit']})
  cluster = undefined
}
