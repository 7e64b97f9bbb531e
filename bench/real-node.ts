/**
 * The model-load pattern on a real node (kubelet + containerd + runc), all in one run:
 *
 * 1. `mlops deploy` to Ready, against `kubectl apply -f <the same rendered manifests> &&
 *    kubectl rollout status` (the peer a user would otherwise run), alternated, each into a
 *    fresh namespace; for the sample model (2.4 KiB) and a 256 MiB model, with the images
 *    already on the node and pulled from the registry (removed from the node first).
 * 2. The loader's lead time inside the pod (its process start to verified model: the
 *    summary's uptime), against `mlops model pull` of the same version on this machine and
 *    curl of the same object (alt=media into a file), each a fresh process.
 * 3. Scale-out 1 → 3 replicas: `mlops deploy --set replicas=3` against
 *    `kubectl scale --replicas=3 && kubectl rollout status`, until all are Ready.
 *
 *   npm run build && npx tsx bench/real-node.ts [--runs 3]
 */
import {execFileSync} from 'node:child_process'
import {rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {stopDockerEngine} from '../test/env/docker.js'
import {stopKubeCluster} from '../test/env/k8s.js'
import {removeNodeImages, stopRealNode} from '../test/env/node.js'
import {KUBECTL, clientsFor} from '../test/e2e/cluster.js'
import {realNodeProject} from '../test/e2e/environment.js'
import {writeSyntheticOnnx} from '../test/helpers/onnx-writer.js'
import {tempDir} from '../test/helpers/stores.js'
import {BIN, median, time} from './lib.js'

const {values} = parseArgs({options: {runs: {type: 'string', default: '3'}}})
const runs = Number(values.runs)
const setup = await realNodeProject('bench')
const {cluster, node, project, env, gcs, bucket} = setup
const {core} = clientsFor(cluster.kubeconfig)
const kube = `"${KUBECTL}" --kubeconfig "${cluster.kubeconfig}"`
const sh = async (script: string) => time('bash', ['-c', script], env, project)
const ratio = (a: number[], b: number[]) => (median(a) / median(b)).toFixed(2)
const s = (values: number[]) => `${median(values).toFixed(2)} s`

try {
  writeSyntheticOnnx(join(project, 'model', 'm256.onnx'), 256 << 20)
  execFileSync(process.execPath, [BIN, 'model', 'push', 'model/m256.onnx', '--name', 'big'], {
    cwd: project,
    env: {...process.env, ...env},
    stdio: 'ignore',
  })
  rmSync(join(project, 'model', 'm256.onnx'))
  const models = [
    {label: 'sample, 2.4 KiB', ref: 'iris@1', object: 'models/iris/1/model.onnx', memory: []},
    {label: 'synthetic, 256 MiB', ref: 'big@1', object: 'models/big/1/model.onnx', memory: ['--set', 'resources.limits.memory=1Gi']},
  ]
  const removeImages = () => removeNodeImages(node, setup.registry.address)

  let n = 0
  const freshNamespace = async () => {
    const namespace = `bench-${n++}`
    execFileSync(process.execPath, [BIN, 'image', 'secret', '-n', namespace], {
      cwd: project,
      env: {...process.env, ...env},
      stdio: 'ignore',
    })
    return namespace
  }

  console.log(
    `real node: kubelet v1.36.3, containerd 2.2.9, runc; images from a registry with basic auth on 127.0.0.1; store: fake-gcs-server on the node's bridge; median of ${runs}`,
  )
  console.log('\n| deploy to Ready | images | mlops deploy | kubectl apply + rollout status | ratio |')
  console.log('|---|---|---|---|---|')
  const leadTimes: Record<string, number[]> = {}
  for (const model of models) {
    for (const images of ['on the node', 'pulled from the registry'] as const) {
      const ours: number[] = []
      const theirs: number[] = []
      for (let i = 0; i < runs; i++) {
        const mine = await freshNamespace()
        if (images !== 'on the node') removeImages()
        ours.push(await time(process.execPath, [BIN, 'deploy', '--model', model.ref, '-n', mine, ...model.memory], env, project))
        const pod = (await core.listNamespacedPod({namespace: mine})).items[0]
        const status = pod.status!.initContainerStatuses![0]
        const summary = JSON.parse((status.state?.terminated ?? status.lastState?.terminated)!.message!) as {uptime: number}
        ;(leadTimes[model.label] ??= []).push(summary.uptime)
        // Gone before the next cold start: images a running pod uses cannot be removed from the node.
        await sh(`${kube} delete namespace ${mine} >/dev/null`)
        const theirNamespace = await freshNamespace()
        const rendered = join(tempDir(), 'rendered.yaml')
        writeFileSync(
          rendered,
          execFileSync(process.execPath, [BIN, 'render', '--model', model.ref, '-n', theirNamespace, ...model.memory], {
            cwd: project,
            env: {...process.env, ...env},
            encoding: 'utf8',
          }),
        )
        if (images !== 'on the node') removeImages()
        theirs.push(
          await sh(
            `${kube} apply -f "${rendered}" >/dev/null && ${kube} rollout status -n ${theirNamespace} deployment/iris --timeout=300s >/dev/null`,
          ),
        )
        await sh(`${kube} delete namespace ${theirNamespace} >/dev/null`)
      }

      console.log(`| ${model.label} | ${images} | ${s(ours)} | ${s(theirs)} | ${ratio(ours, theirs)} |`)
    }
  }

  console.log(
    '\n| loader lead time | in the pod (process start → verified) | mlops model pull on this machine | curl of the object | pod / host pull | pod / curl |',
  )
  console.log('|---|---|---|---|---|---|')
  for (const model of models) {
    const host: number[] = []
    const curl: number[] = []
    for (let i = 0; i < runs; i++) {
      const dir = tempDir()
      host.push(await time(process.execPath, [BIN, 'model', 'pull', model.ref, '--to', join(dir, 'model.onnx')], env, project))
      curl.push(
        await time('curl', [
          '-sf',
          '-o',
          join(dir, 'curl.onnx'),
          `${gcs.url}/storage/v1/b/${bucket}/o/${encodeURIComponent(model.object)}?alt=media`,
        ]),
      )
      rmSync(dir, {recursive: true})
    }

    const pod = leadTimes[model.label]
    console.log(`| ${model.label} | ${s(pod)} | ${s(host)} | ${s(curl)} | ${ratio(pod, host)} | ${ratio(pod, curl)} |`)
  }

  console.log('\n| scale-out 1 → 3, until all Ready | mlops deploy --set replicas=3 | kubectl scale + rollout status | ratio |')
  console.log('|---|---|---|---|')
  for (const model of models) {
    const ours: number[] = []
    const theirs: number[] = []
    for (let i = 0; i < runs; i++) {
      const mine = await freshNamespace()
      const theirNamespace = await freshNamespace()
      await time(process.execPath, [BIN, 'deploy', '--model', model.ref, '-n', mine, ...model.memory], env, project)
      await time(process.execPath, [BIN, 'deploy', '--model', model.ref, '-n', theirNamespace, ...model.memory], env, project)
      ours.push(
        await time(
          process.execPath,
          [BIN, 'deploy', '--model', model.ref, '-n', mine, '--set', 'replicas=3', ...model.memory],
          env,
          project,
        ),
      )
      theirs.push(
        await sh(
          `${kube} scale -n ${theirNamespace} deployment/iris --replicas=3 >/dev/null && ${kube} rollout status -n ${theirNamespace} deployment/iris --timeout=300s >/dev/null`,
        ),
      )
      for (const namespace of [mine, theirNamespace]) await sh(`${kube} delete namespace ${namespace} >/dev/null`)
    }

    console.log(`| ${model.label} | ${s(ours)} | ${s(theirs)} | ${ratio(ours, theirs)} |`)
  }
} finally {
  await setup.stop()
  stopRealNode()
  stopDockerEngine()
  stopKubeCluster()
}
