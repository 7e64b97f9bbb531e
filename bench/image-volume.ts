/**
 * Model delivery on a real node (kubelet 1.36 + containerd 2.2), all in one run:
 * the loader initContainer (the model from the gs:// store into an emptyDir) against an
 * image volume (the image `mlops model publish` made, mounted by containerd), for the sample
 * model (2.4 KiB) and a 256 MiB one, each
 *   - cold: nothing of the project on the node (loader, API and model images removed), and
 *   - warm: a pod of the same model already ran there (the images are in the node's store);
 * timed from `mlops deploy` to Ready, and to the first correct prediction (`mlops predict`
 * right after); then scale-out 1 → 3 replicas on a warm node, until all are Ready.
 * Each run deploys into a fresh namespace.
 *
 *   npm run build && npx tsx bench/image-volume.ts [--runs 3]
 */
import {execFileSync} from 'node:child_process'
import {rmSync} from 'node:fs'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {stopDockerEngine} from '../test/env/docker.js'
import {stopKubeCluster} from '../test/env/k8s.js'
import {removeNodeImages, stopRealNode} from '../test/env/node.js'
import {KUBECTL} from '../test/e2e/cluster.js'
import {realNodeProject} from '../test/e2e/environment.js'
import {writeSyntheticOnnx} from '../test/helpers/onnx-writer.js'
import {BIN, median, time} from './lib.js'

const {values} = parseArgs({options: {runs: {type: 'string', default: '3'}}})
const runs = Number(values.runs)
const setup = await realNodeProject('bench-iv')
const {cluster, node, project, env} = setup
const kube = `"${KUBECTL}" --kubeconfig "${cluster.kubeconfig}"`
const mlops = (args: string[]) =>
  execFileSync(process.execPath, [BIN, ...args], {
    cwd: project,
    env: {...process.env, ...env},
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
const timed = (args: string[]) => time(process.execPath, [BIN, ...args], env, project)
const s = (values: number[]) => `${median(values).toFixed(2)} s`
const ratio = (a: number[], b: number[]) => (median(a) / median(b)).toFixed(2)

try {
  writeSyntheticOnnx(join(project, 'model', 'm256.onnx'), 256 << 20)
  mlops(['model', 'push', 'model/m256.onnx', '--name', 'big'])
  rmSync(join(project, 'model', 'm256.onnx'))
  const models = [
    {label: 'sample, 2.4 KiB', ref: 'iris@1', predict: ['--data', '[[6.3, 3.3, 6, 2.5]]', '--expect', 'virginica'], extra: [] as string[]},
    {
      label: 'synthetic, 256 MiB',
      ref: 'big@1',
      predict: ['--data', '[[1, 2, 3, 4]]', '--endpoint', '/predict', '--expect', '[[1,2,3,4]]'],
      extra: ['--set', 'resources.limits.memory=1Gi'],
    },
  ]
  for (const model of models) mlops(['model', 'publish', model.ref])

  const removeImages = () => removeNodeImages(node, setup.registry.address)

  let n = 0
  const freshNamespace = () => {
    const namespace = `bench-iv-${n++}`
    mlops(['image', 'secret', '-n', namespace])
    return namespace
  }

  const drop = (namespace: string) => execFileSync('bash', ['-c', `${kube} delete namespace ${namespace} >/dev/null`])
  const deliveries = ['init-container', 'image-volume'] as const
  const base = (model: (typeof models)[number], delivery: string, namespace: string) => [
    'deploy',
    '--model',
    model.ref,
    '-n',
    namespace,
    '--delivery',
    delivery,
    '--set',
    'autoscaling=false',
    '--set',
    'replicas=1',
    ...model.extra,
  ]

  console.log(
    `real node: kubelet v1.36.3, containerd 2.2.9, runc; images from a registry with basic auth on 127.0.0.1; store: fake-gcs-server on the node's bridge; median of ${runs}`,
  )
  console.log('\n| model | node | delivery | deploy → Ready | deploy → first correct prediction |')
  console.log('|---|---|---|---|---|')
  const results: Record<string, {ready: number[]; predicted: number[]}> = {}
  for (const model of models) {
    for (const state of ['cold', 'warm'] as const) {
      for (const delivery of deliveries) {
        const ready: number[] = []
        const predicted: number[] = []
        for (let i = 0; i < runs; i++) {
          if (state === 'cold') {
            removeImages()
          } else {
            // A pod of this model and delivery ran on the node just before.
            const warmup = freshNamespace()
            mlops(base(model, delivery, warmup))
            drop(warmup)
          }

          const namespace = freshNamespace()
          const started = performance.now()
          mlops(base(model, delivery, namespace))
          ready.push((performance.now() - started) / 1000)
          mlops(['predict', '--namespace', namespace, '--target', 'k8s', ...model.predict])
          predicted.push((performance.now() - started) / 1000)
          drop(namespace)
        }

        results[`${model.label} ${state} ${delivery}`] = {ready, predicted}
        console.log(`| ${model.label} | ${state} | ${delivery} | ${s(ready)} | ${s(predicted)} |`)
      }
    }
  }

  console.log('\n| model | node | deploy → Ready: loader / image volume | first prediction: loader / image volume |')
  console.log('|---|---|---|---|')
  for (const model of models) {
    for (const state of ['cold', 'warm']) {
      const loader = results[`${model.label} ${state} init-container`]
      const volume = results[`${model.label} ${state} image-volume`]
      console.log(`| ${model.label} | ${state} | ${ratio(loader.ready, volume.ready)} | ${ratio(loader.predicted, volume.predicted)} |`)
    }
  }

  console.log('\n| scale-out 1 → 3 on a warm node, until all Ready | init-container | image-volume | loader / image volume |')
  console.log('|---|---|---|---|')
  for (const model of models) {
    const times: Record<string, number[]> = {}
    for (let i = 0; i < runs; i++) {
      for (const delivery of deliveries) {
        const namespace = freshNamespace()
        mlops(base(model, delivery, namespace))
        ;(times[delivery] ??= []).push(await timed([...base(model, delivery, namespace), '--set', 'replicas=3']))
        drop(namespace)
      }
    }

    console.log(
      `| ${model.label} | ${s(times['init-container'])} | ${s(times['image-volume'])} | ${ratio(times['init-container'], times['image-volume'])} |`,
    )
  }
} finally {
  await setup.stop()
  stopRealNode()
  stopDockerEngine()
  stopKubeCluster()
}
