import {execFileSync} from 'node:child_process'
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {TEST_CACHE} from './cache.js'

const SCRIPTS = join(import.meta.dirname, 'docker')

function script(name: string, args: string[] = [], env: Record<string, string> = {}): Record<string, string> {
  const out = execFileSync('bash', [join(SCRIPTS, name), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {...process.env, ...env},
  })
  return Object.fromEntries(
    out
      .trim()
      .split('\n')
      .filter(line => line.includes('='))
      .map(line => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  )
}

let startedByUs = false
let baseImage: string | undefined

/**
 * A real Docker engine (installed from Debian's docker.io and started without
 * a bridge on first use, about 15 s on a new machine) with the local stand-in
 * for node:20-slim (test/env/docker/base-image.sh: host Node 20 in a root made
 * of host files, under a tag of its own). Every call checks that the engine
 * answers (engine.sh up returns at once when it does) and starts it again if
 * not.
 *
 * Image builds go FROM the stand-in: MLOPS_BASE_IMAGE (image build
 * --base-image) names it for in-process commands and child CLIs alike. The
 * tests never make the product's default, node:20-slim: on a fresh machine a
 * build that misses MLOPS_BASE_IMAGE fails rather than using a look-alike.
 */
export function dockerEngine(): {dockerHost: string; baseImage: string} {
  const engine = script('engine.sh', ['up'])
  if (engine.started === 'ours') startedByUs = true
  if (baseImage === undefined || engine.started === 'ours') baseImage = script('base-image.sh').image
  process.env.MLOPS_BASE_IMAGE = baseImage
  return {dockerHost: engine.DOCKER_HOST, baseImage}
}

/**
 * The stand-in for node:20-slim on another platform (linux/arm64), made from Debian's arm64
 * packages and Node's arm64 build (base-image.sh, MLOPS_BASE_ARCH), whose programs run here under
 * QEMU user emulation (qemu-user-static, registered with binfmt_misc by the script). Its downloads
 * are kept in the test cache.
 */
export function foreignBaseImage(arch: 'arm64'): string {
  dockerEngine()
  return script('base-image.sh', [], {MLOPS_BASE_ARCH: arch, MLOPS_BASE_CACHE: join(TEST_CACHE, 'base-image')}).image
}

/** Stops the engine if this run started it. */
export function stopDockerEngine(): void {
  if (startedByUs) script('engine.sh', ['down'])
  startedByUs = false
}

/** A local registry (Debian docker-registry) on 127.0.0.1 with basic auth; stop it with the returned function. */
export function localRegistry(user: string, password: string): {address: string; stop: () => void} {
  return startRegistry({MLOPS_REGISTRY_USER: user, MLOPS_REGISTRY_PASSWORD: password})
}

/**
 * A local registry with bearer-token auth, as Docker Hub, GCR and Artifact Registry run it: its
 * 401 names a token service (`realm`) that, given the user's credentials, answers a signed JWT
 * for the scope asked. Both on 127.0.0.1; the token server is test/helpers/token-server.ts.
 */
export function tokenRegistry(realm: string, certificate: string): {address: string; stop: () => void} {
  return startRegistry({MLOPS_REGISTRY_TOKEN_REALM: realm, MLOPS_REGISTRY_TOKEN_CERT: certificate})
}

/** registry.sh up with these settings, in a state folder of its own (two runs on one machine never share or stop one). */
function startRegistry(settings: Record<string, string>): {address: string; stop: () => void} {
  const state = mkdtempSync(join(tmpdir(), 'mlops-registry-'))
  const env = {...process.env, ...settings, MLOPS_REGISTRY_STATE: state}
  const run = (args: string[]) =>
    execFileSync('bash', [join(SCRIPTS, 'registry.sh'), ...args], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env})
  const address = /REGISTRY=(\S+)/.exec(run(['up']))![1]
  return {address, stop: () => run(['down'])}
}
