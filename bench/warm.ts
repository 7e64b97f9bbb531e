/**
 * mlops model warm on a real node (kubelet 1.36 + containerd 2.2), image-volume delivery, one
 * replica, each run in a fresh namespace; deploy → Ready is the wall time of `mlops deploy`
 * (it returns once the rollout is available):
 *   - cold: nothing of the project on the node (API and model images removed);
 *   - cold, after `mlops model warm`: the same, then a warm, then the deploy (the warm's own time apart);
 *   - warm: a pod of the same model ran on the node just before;
 * for a 256 MiB and a 1 GiB model (--sizes 256 to leave out 1 GiB). Then scale-out 1 → 3 replicas
 * on a warm node for the sample model (2.4 KiB) and the 256 MiB one, until all are Ready.
 *
 *   npm run build && npx tsx bench/warm.ts [--runs 3] [--sizes 256,1024]
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

const {values} = parseArgs({options: {runs: {type: 'string', default: '3'}, sizes: {type: 'string', default: '256,1024'}}})
const runs = Number(values.runs)
const sizes = values.sizes.split(',').map(Number)
const setup = await realNodeProject('bench-warm')
const {cluster, node, project, env} = setup
const kube = `"${KUBECTL}" --kubeconfig "${cluster.kubeconfig}"`
const mlops = (args: string[]) =>
  execFileSync(process.execPath, [BIN, ...args], {
    cwd: project,
    env: {...process.env, ...env},
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
const timed = async (args: string[]) => time(process.execPath, [BIN, ...args], env, project)
const s = (list: number[]) => `${median(list).toFixed(2)} s`
const ratio = (a: number[], b: number[]) => (median(a) / median(b)).toFixed(2)

try {
  const models = [{label: 'sample, 2.4 KiB', ref: 'iris@1', memory: '512Mi'}]
  for (const mib of sizes) {
    const name = `m${mib}`
    writeSyntheticOnnx(join(project, 'model', `${name}.onnx`), mib << 20)
    mlops(['model', 'push', `model/${name}.onnx`, '--name', name])
    rmSync(join(project, 'model', `${name}.onnx`))
    // serve holds about twice the model while loading (docs/kubernetes.md).
    models.push({
      label: `synthetic, ${mib >= 1024 ? `${mib / 1024} GiB` : `${mib} MiB`}`,
      ref: `${name}@1`,
      memory: `${Math.ceil((mib * 2.5) / 256) * 256 + 256}Mi`,
    })
  }

  for (const model of models) mlops(['model', 'publish', model.ref])
  let n = 0
  const freshNamespace = () => {
    const namespace = `bench-warm-${n++}`
    mlops(['image', 'secret', '-n', namespace])
    return namespace
  }

  const drop = (namespace: string) => execFileSync('bash', ['-c', `${kube} delete namespace ${namespace} >/dev/null`])
  const deploy = (model: (typeof models)[number], namespace: string, replicas = 1) => [
    'deploy',
    '--model',
    model.ref,
    '-n',
    namespace,
    '--delivery',
    'image-volume',
    '--set',
    'autoscaling=false',
    '--set',
    `replicas=${replicas}`,
    '--set',
    `resources.limits.memory=${model.memory}`,
  ]
  const cold = () => removeNodeImages(node, setup.registry.address)

  console.log(
    `real node: kubelet v1.36.3, containerd 2.2.9, runc; images from a registry with basic auth on 127.0.0.1; delivery image-volume; median of ${runs}`,
  )
  console.log('\n| model | cold | cold, after model warm | warm | model warm itself (cold node) | cold / after warm |')
  console.log('|---|---|---|---|---|---|')
  for (const model of models.slice(1)) {
    const times: Record<'cold' | 'warmed' | 'warm' | 'warming', number[]> = {cold: [], warmed: [], warm: [], warming: []}
    for (let i = 0; i < runs; i++) {
      cold()
      let namespace = freshNamespace()
      times.cold.push(await timed(deploy(model, namespace)))
      drop(namespace)

      cold()
      namespace = freshNamespace()
      times.warming.push(await timed(['model', 'warm', model.ref, '-n', namespace, '--delivery', 'image-volume']))
      times.warmed.push(await timed(deploy(model, namespace)))
      drop(namespace)

      // The node now holds both images: a pod of this model ran there.
      namespace = freshNamespace()
      times.warm.push(await timed(deploy(model, namespace)))
      drop(namespace)
    }

    console.log(
      `| ${model.label} | ${s(times.cold)} | ${s(times.warmed)} | ${s(times.warm)} | ${s(times.warming)} | ${ratio(times.cold, times.warmed)} |`,
    )
  }

  console.log('\n| scale-out 1 → 3 on a warm node, until all Ready | seconds | / sample |')
  console.log('|---|---|---|')
  const scale: Record<string, number[]> = {}
  for (const model of models.filter(m => !m.ref.startsWith('m1024'))) {
    for (let i = 0; i < runs; i++) {
      const namespace = freshNamespace()
      mlops(deploy(model, namespace))
      ;(scale[model.label] ??= []).push(await timed(deploy(model, namespace, 3)))
      drop(namespace)
    }

    console.log(`| ${model.label} | ${s(scale[model.label])} | ${ratio(scale[model.label], scale[models[0].label])} |`)
  }
} finally {
  await setup.stop()
  stopRealNode()
  stopDockerEngine()
  stopKubeCluster()
}
