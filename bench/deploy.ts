/**
 * `mlops deploy` (render, compatibility check, server-side apply, wait for the
 * rollout) against `kubectl apply -f <rendered> && kubectl rollout status` of
 * the same manifests on the same control plane, alternated in one run, each
 * into a fresh namespace. Also `mlops render` wall time.
 *
 * With --before DIR (a built checkout of an earlier commit), that build's deploy too, alternated in the same loop.
 *
 *   npm run build && npx tsx bench/deploy.ts [--runs 5] [--before /path/to/earlier/checkout]
 */
import {writeFileSync} from 'node:fs'
import {homedir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {inspectModelFile} from '../src/store/model-file.js'
import {FakeGcs} from '../test/env/fake-gcs.js'
import {kubeCluster, stopKubeCluster} from '../test/env/k8s.js'
import {fixture, makeStore, tempDir} from '../test/helpers/stores.js'
import {BIN, median, time} from './lib.js'

const {values} = parseArgs({options: {runs: {type: 'string', default: '5'}, before: {type: 'string'}}})
const BEFORE = values.before ? join(values.before, 'bin', 'run.js') : undefined
const runs = Number(values.runs)
const kubectl = join(process.env.MLOPS_TEST_CACHE ?? join(homedir(), '.cache', 'mlops-test'), 'k8s-v1.36.3', 'bin', 'kubectl')
const cluster = kubeCluster()
const gcs = await FakeGcs.start()
try {
  const store = await makeStore('gcs', {}, gcs)
  await store.store.push({
    model: await inspectModelFile(fixture('iris_svc.onnx'), fixture('iris_labels.json')),
    name: 'iris',
    metadata: {},
    workDir: tempDir(),
  })
  const project = tempDir()
  const config = join(project, 'mlops.yaml')
  writeFileSync(
    config,
    [
      `name: iris`,
      `model:`,
      `  name: iris`,
      `store:`,
      `  uri: ${store.uri}`,
      `  endpoint: ${gcs.url}`,
      `image:`,
      `  repository: registry.example.com/team`,
      `  tag: v1`,
      `deploy:`,
      `  target: k8s`,
      `  autoscaling: false`,
      `  replicas: 2`,
    ].join('\n') + '\n',
  )
  const env = {KUBECONFIG: cluster.kubeconfig, CI: '1'}

  const renders: number[] = []
  for (let i = 0; i < runs; i++) renders.push(await time(process.execPath, [BIN, 'render', '--config', config], env))

  const ours: number[] = []
  const theirs: number[] = []
  const earlier: number[] = []
  for (let i = 0; i < runs; i++) {
    ours.push(await time(process.execPath, [BIN, 'deploy', '--config', config, '--namespace', `bench-mlops-${i}`], env))
    if (BEFORE) earlier.push(await time(process.execPath, [BEFORE, 'deploy', '--config', config, '--namespace', `bench-before-${i}`], env))
    // One ordered stream (the Namespace first), as mlops applies it.
    const rendered = join(project, `kubectl-${i}.yaml`)
    await time(
      'bash',
      ['-c', `"${process.execPath}" "${BIN}" render --config "${config}" --namespace bench-kubectl-${i} > "${rendered}"`],
      env,
    )
    theirs.push(
      await time(
        'bash',
        [
          '-c',
          `"${kubectl}" apply -f "${rendered}" >/dev/null && "${kubectl}" rollout status -n bench-kubectl-${i} deployment/iris --timeout=120s >/dev/null`,
        ],
        env,
      ),
    )
  }

  console.log(
    `control plane: kube-apiserver ${'v1.36.3'} + kwok on 127.0.0.1; 2-replica Deployment, Service, PDB into a fresh namespace; median of ${runs}`,
  )
  console.log('| step | wall time | ratio |')
  console.log('|---|---|---|')
  console.log(`| kubectl apply -f + kubectl rollout status | ${median(theirs).toFixed(3)} s | 1.00 |`)
  console.log(
    `| mlops deploy (resolve, render, check, apply, wait) | ${median(ours).toFixed(3)} s | ${(median(ours) / median(theirs)).toFixed(2)} |`,
  )
  console.log(`| mlops render | ${median(renders).toFixed(3)} s | |`)
  if (BEFORE) {
    const ratio = (median(earlier) / median(theirs)).toFixed(2)
    console.log(
      `| mlops deploy of ${values.before} | ${median(earlier).toFixed(3)} s | ${ratio} (this build / that one: ${(median(ours) / median(earlier)).toFixed(2)}) |`,
    )
  }
} finally {
  await gcs.stop()
  stopKubeCluster()
}
