import {type ChildProcess, execFileSync, spawn} from 'node:child_process'
import {existsSync, mkdirSync, renameSync} from 'node:fs'
import {join} from 'node:path'

import {TEST_BIN} from './cache.js'
import {freePort, waitFor} from './ports.js'

export const FAKE_GCS_VERSION = 'v1.55.1'
const BINARY = join(TEST_BIN, `fake-gcs-server-${FAKE_GCS_VERSION}`)

/**
 * fake-gcs-server, the GCS emulator, built from its Go module into the test
 * cache on first use (about 80 s on 2 cores), then reused.
 */
export function ensureFakeGcsBinary(): string {
  if (existsSync(BINARY)) return BINARY
  mkdirSync(TEST_BIN, {recursive: true})
  const gobin = join(TEST_BIN, `.go-install-${process.pid}`)
  console.error(`[test env] building fake-gcs-server ${FAKE_GCS_VERSION} with go install (first run only)`)
  execFileSync('go', ['install', `github.com/fsouza/fake-gcs-server@${FAKE_GCS_VERSION}`], {
    env: {...process.env, GOBIN: gobin, CGO_ENABLED: '0'},
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  renameSync(join(gobin, 'fake-gcs-server'), BINARY)
  return BINARY
}

export class FakeGcs {
  private constructor(
    readonly url: string,
    readonly process: ChildProcess,
  ) {}

  /** On 127.0.0.1, or on another address of this machine (the real node's pod bridge, where pods reach it). */
  static async start(options: {host?: string} = {}): Promise<FakeGcs> {
    const binary = ensureFakeGcsBinary()
    const host = options.host ?? '127.0.0.1'
    const port = await freePort(host)
    const url = `http://${host}:${port}`
    const child = spawn(
      binary,
      [
        '-scheme',
        'http',
        '-host',
        host,
        '-port',
        String(port),
        '-backend',
        'memory',
        '-external-url',
        url,
        '-public-host',
        `${host}:${port}`,
        '-log-level',
        'error',
      ],
      {stdio: ['ignore', 'ignore', 'pipe']},
    )
    let exited = false
    child.once('exit', () => {
      exited = true
    })
    await waitFor(async () => {
      if (exited) throw new Error('fake-gcs-server exited during start-up')
      return (await fetch(`${url}/storage/v1/b?project=test`)).ok
    }, `fake-gcs-server on ${url}`)
    return new FakeGcs(url, child)
  }

  async createBucket(name: string): Promise<void> {
    const response = await fetch(`${this.url}/storage/v1/b?project=test`, {
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify({name}),
    })
    if (!response.ok) throw new Error(`creating bucket ${name}: HTTP ${response.status} ${await response.text()}`)
  }

  /** Every bucket on the server, by name. */
  async listBuckets(): Promise<string[]> {
    const response = await fetch(`${this.url}/storage/v1/b?project=test`)
    if (!response.ok) throw new Error(`listing buckets: HTTP ${response.status} ${await response.text()}`)
    const body = (await response.json()) as {items?: Array<{name: string}>}
    return (body.items ?? []).map(item => item.name).sort()
  }

  /** Replaces an object's bytes behind the store's back (a corrupted object). */
  async overwriteObject(bucket: string, name: string, data: Buffer): Promise<void> {
    const response = await fetch(`${this.url}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=${encodeURIComponent(name)}`, {
      method: 'POST',
      headers: {'content-type': 'application/octet-stream'},
      body: new Uint8Array(data),
    })
    if (!response.ok) throw new Error(`overwriting ${name}: HTTP ${response.status} ${await response.text()}`)
  }

  async deleteObject(bucket: string, name: string): Promise<void> {
    const response = await fetch(`${this.url}/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}`, {method: 'DELETE'})
    if (!response.ok && response.status !== 404) throw new Error(`deleting ${name}: HTTP ${response.status} ${await response.text()}`)
  }

  async readObject(bucket: string, name: string): Promise<Buffer | undefined> {
    const response = await fetch(`${this.url}/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}?alt=media`)
    if (response.status === 404) return undefined
    return Buffer.from(await response.arrayBuffer())
  }

  async listObjects(bucket: string): Promise<string[]> {
    const response = await fetch(`${this.url}/storage/v1/b/${bucket}/o`)
    // A listing that failed is not an empty bucket: a leftover check aimed at the wrong bucket must fail.
    if (!response.ok) throw new Error(`listing gs://${bucket}: HTTP ${response.status} ${await response.text()}`)
    const body = (await response.json()) as {items?: Array<{name: string}>}
    return (body.items ?? []).map(item => item.name).sort()
  }

  /** Ends the server abruptly (SIGKILL), as a crash or a network cut would. */
  kill(): void {
    this.process.kill('SIGKILL')
  }

  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return
    const exited = new Promise(resolve => {
      this.process.once('exit', resolve)
    })
    this.process.kill('SIGTERM')
    await exited
  }
}
