import type {AppsV1Api, CoreV1Api} from '@kubernetes/client-node'
import {expect} from 'chai'
import {copyFileSync} from 'node:fs'
import {join} from 'node:path'

import {fixture} from '../helpers/stores.js'
import {clientsFor} from './cluster.js'
import {type RealNodeProject, realNodeProject} from './environment.js'

export interface ProgressiveProject {
  setup: RealNodeProject
  core: CoreV1Api
  apps: AppsV1Api
  /** What a canary or a shadow may leave in the namespace: its Deployment, Service, ConfigMap and pods. */
  leftovers(track: 'canary' | 'shadow'): Promise<string[]>
  /** Pushes a model file of the project (relative to it) as iris@`version`, with the labels and the reference set. */
  pushVersion(file: string, version: string): Promise<void>
  /** NAME@VERSION of the stable Deployment, as mlops status says. */
  servedVersion(): Promise<string>
}

/**
 * The project deploy --canary and --shadow are tried on: a real node, iris@1 (the SVC) deployed
 * as the stable, and two versions with the reference set: `same` (the SVC again, the same answers)
 * and `rf` (the random forest, agreeing on 0.919 of the reference rows).
 */
export async function progressiveProject(namespace: string): Promise<ProgressiveProject> {
  const setup = await realNodeProject(namespace)
  const {core, apps} = clientsFor(setup.cluster.kubeconfig)
  copyFileSync(fixture('iris_rf.onnx'), join(setup.project, 'model', 'rf.onnx'))
  const pushVersion = async (file: string, version: string) => {
    const pushed = await setup.mlops(
      'model',
      'push',
      file,
      '--name',
      'iris',
      '--labels',
      'model/labels.json',
      '--reference',
      'model/reference.csv',
      '--version',
      version,
    )
    expect(pushed.code, pushed.stderr).to.equal(0)
  }

  await pushVersion('model/model.onnx', 'same')
  await pushVersion('model/rf.onnx', 'rf')
  const first = await setup.mlops('deploy', '--model', 'iris@1', '--set', 'autoscaling=false')
  expect(first.code, first.stderr).to.equal(0)
  const named = (kind: string, items: Array<{metadata?: {name?: string}}>, suffix: string) =>
    items.map(item => `${kind}/${item.metadata!.name}`).filter(name => name.endsWith(suffix))
  return {
    setup,
    core,
    apps,
    pushVersion,
    async leftovers(track) {
      const suffix = `-${track}`
      return [
        ...named('deployment', (await apps.listNamespacedDeployment({namespace})).items, suffix),
        ...named('service', (await core.listNamespacedService({namespace})).items, suffix),
        ...named('configmap', (await core.listNamespacedConfigMap({namespace})).items, suffix),
        ...(await core.listNamespacedPod({namespace, labelSelector: `mlops.io/track=${track}`})).items.map(p => `pod/${p.metadata!.name}`),
      ]
    },
    async servedVersion() {
      const {model} = JSON.parse((await setup.mlops('status', '--json')).stdout) as {model: {name: string; version: string}}
      return `${model.name}@${model.version}`
    },
  }
}
