/**
 * A canary progression's time beyond its step windows, on a real node (kubelet + containerd +
 * runc), one stable replica: `mlops deploy --canary --steps 10,50 --interval 10s` of a new
 * version, against a plain `mlops deploy` of a new version (the baseline), in the same run,
 * alternated (even runs plain first, odd runs canary first) and each time the other version
 * (two pushes of the sample SVC, each with the reference set, so the model gate runs as users
 * run it). No traffic: every gate reads both tracks' /metrics and passes.
 *
 * Overhead = the canary deploy's wall time − the step windows (steps below 100 × interval: the
 * waits a user asked for); what is left is the canary's own rollouts, the gates' reads, the
 * promotion's rollout and the canary's removal. Printed: per run, then medians and
 * overhead / plain deploy.
 *
 * --trace: each canary deploy's output lines with the seconds since its start (where the time goes).
 *
 *   npm run build && npx tsx bench/canary.ts [--runs 3] [--steps 10,50] [--interval 10] [--trace]
 */
import {spawn} from 'node:child_process'
import {createInterface} from 'node:readline'
import {parseArgs} from 'node:util'

import {stopDockerEngine} from '../test/env/docker.js'
import {stopKubeCluster} from '../test/env/k8s.js'
import {stopRealNode} from '../test/env/node.js'
import {realNodeProject} from '../test/e2e/environment.js'
import {BIN, median, time} from './lib.js'

const {values} = parseArgs({
  options: {
    runs: {type: 'string', default: '3'},
    steps: {type: 'string', default: '10,50'},
    interval: {type: 'string', default: '10'},
    trace: {type: 'boolean', default: false},
  },
})
const runs = Number(values.runs)
const interval = Number(values.interval)
const windows = values.steps.split(',').filter(step => Number(step) < 100).length * interval
const setup = await realNodeProject('bench-canary')
const {project, env} = setup
const deployArgs = (version: string, canary: boolean) => [
  BIN,
  'deploy',
  '--model',
  `iris@${version}`,
  '--set',
  'autoscaling=false',
  ...(canary ? ['--canary', '--steps', values.steps, '--interval', `${interval}s`] : []),
]
const deploy = async (version: string, canary: boolean) =>
  canary && values.trace ? traced(deployArgs(version, canary)) : time(process.execPath, deployArgs(version, canary), env, project)

/** The command's wall time, its stdout and stderr lines printed as they come with the seconds since its start. */
async function traced(args: string[]): Promise<number> {
  const started = process.hrtime.bigint()
  const since = () => (Number(process.hrtime.bigint() - started) / 1e9).toFixed(2).padStart(6)
  const child = spawn(process.execPath, args, {env: {...process.env, ...env}, cwd: project, stdio: ['ignore', 'pipe', 'pipe']})
  for (const stream of [child.stdout, child.stderr])
    createInterface({input: stream}).on('line', line => console.log(`  ${since()} s  ${line}`))
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  if (code !== 0) throw new Error(`deploy exited ${code}`)
  return Number(process.hrtime.bigint() - started) / 1e9
}
const s = (seconds: number) => `${seconds.toFixed(2)} s`

try {
  for (const version of ['a', 'b']) {
    await time(
      process.execPath,
      [
        BIN,
        'model',
        'push',
        'model/model.onnx',
        '--name',
        'iris',
        '--labels',
        'model/labels.json',
        '--reference',
        'model/reference.csv',
        '--version',
        version,
      ],
      env,
      project,
    )
  }

  await deploy('a', false)
  console.log(
    `real node: kubelet v1.36.3, containerd 2.2.9, runc; one stable replica, no traffic; canary --steps ${values.steps} --interval ${interval}s (step windows ${windows} s); ${runs} runs`,
  )
  console.log('\n| run | first | plain deploy | canary deploy | canary − step windows (overhead) | overhead / plain |')
  console.log('|---|---|---|---|---|---|')
  const plain: number[] = []
  const overhead: number[] = []
  // The stable serves `a` before each run and after it: each deploy is a change of version.
  for (let i = 0; i < runs; i++) {
    let plainSeconds: number
    let canarySeconds: number
    if (i % 2 === 0) {
      plainSeconds = await deploy('b', false)
      canarySeconds = await deploy('a', true)
    } else {
      canarySeconds = await deploy('b', true)
      plainSeconds = await deploy('a', false)
    }

    plain.push(plainSeconds)
    overhead.push(canarySeconds - windows)
    console.log(
      `| ${i + 1} | ${i % 2 === 0 ? 'plain' : 'canary'} | ${s(plainSeconds)} | ${s(canarySeconds)} | ${s(canarySeconds - windows)} | ${((canarySeconds - windows) / plainSeconds).toFixed(2)} |`,
    )
  }

  console.log(
    `| median | | ${s(median(plain))} | ${s(median(overhead) + windows)} | ${s(median(overhead))} | **${(median(overhead) / median(plain)).toFixed(2)}** |`,
  )
} finally {
  await setup.stop()
  stopRealNode()
  stopDockerEngine()
  stopKubeCluster()
}
