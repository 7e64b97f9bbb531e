import {stopDockerEngine} from './docker.js'
import {FakeGcs, ensureFakeGcsBinary} from './fake-gcs.js'
import {ensureKubeBinaries, stopKubeCluster} from './k8s.js'
import {stopRealNode} from './node.js'

// The suite's expected outputs are those of a terminal or a plain CI: when the suite itself runs
// under GitHub Actions, the annotations and step summary mlops adds there are for the tests that
// set GITHUB_ACTIONS themselves (test/cli/github-actions.test.ts), not for every command.
delete process.env.GITHUB_ACTIONS
delete process.env.GITHUB_STEP_SUMMARY

/**
 * One GCS emulator for the whole run (tests that kill a server start their
 * own). Each test uses a bucket of its own, so tests do not see each other.
 */
let shared: FakeGcs | undefined

export async function sharedGcs(): Promise<FakeGcs> {
  shared ??= await FakeGcs.start()
  return shared
}

export const mochaHooks = {
  beforeAll(this: Mocha.Context): void {
    // A fresh machine builds the test servers first, all of them before any test: the emulator
    // (go install, about 80 s on 2 cores), then Kubernetes, the kubelet and containerd (about 10 min
    // idle). Measured on a busy 2-core machine: 27 min beside one CPU hog, and kube-apiserver alone
    // 25 min beside a hog and a second suite. The budget is CI's own (90 min) less the tests' (15):
    // a build that needs more cannot pass CI anyway. Every later hook only starts processes.
    this.timeout(75 * 60 * 1000)
    ensureFakeGcsBinary()
    ensureKubeBinaries()
  },

  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(60_000)
    await shared?.stop()
    stopRealNode()
    stopDockerEngine()
    stopKubeCluster()
  },
}
