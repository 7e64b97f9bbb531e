/**
 * Running a container to its end on the Docker engine: the docker target's loader, and the
 * API image's own check (mlops image check). Only dockerode's types here: it loads where used.
 */
import type Docker from 'dockerode'
import {PassThrough} from 'node:stream'

import {UnavailableError} from '../errors.js'

/** What a container that ran to its end said: its exit code, and its output, each stream apart. */
export interface ContainerRun {
  code: number
  stdout: string
  stderr: string
}

/**
 * Creates a container, gives it `files` (a tar stream, extracted at `/` before it starts: works with
 * an engine on another machine, where a bind mount would not), runs it to its end and removes it.
 * Past `timeoutMs` it is killed and the run fails.
 */
export async function runToEnd(
  docker: Docker,
  options: Docker.ContainerCreateOptions,
  extra: {files?: NodeJS.ReadableStream; timeoutMs?: number; onCreated?: (id: string) => void} = {},
): Promise<ContainerRun> {
  const container = await docker.createContainer(options)
  extra.onCreated?.(container.id)
  let timer: NodeJS.Timeout | undefined
  try {
    if (extra.files) await container.putArchive(extra.files, {path: '/'})
    await container.start()
    const waited = container.wait() as Promise<{StatusCode: number}>
    const outcome = extra.timeoutMs
      ? await Promise.race([
          waited,
          new Promise<'timeout'>(resolve => {
            timer = setTimeout(() => resolve('timeout'), extra.timeoutMs)
          }),
        ])
      : await waited
    if (outcome === 'timeout') {
      await container.kill().catch(() => {})
      throw new UnavailableError(`the container of ${String(options.Image)} did not finish within ${Math.round(extra.timeoutMs! / 1000)}s`)
    }

    const [stdout, stderr] = await Promise.all([containerLogs(docker, container, 'stdout'), containerLogs(docker, container, 'stderr')])
    return {code: outcome.StatusCode, stdout, stderr}
  } finally {
    clearTimeout(timer)
    await container.remove({force: true}).catch(() => {})
  }
}

/** A container's log so far: both streams, or one. */
export async function containerLogs(
  docker: Docker,
  container: Docker.Container,
  which: 'all' | 'stderr' | 'stdout' = 'all',
): Promise<string> {
  const raw = await container.logs({stdout: which !== 'stderr', stderr: which !== 'stdout', follow: false})
  const out: Buffer[] = []
  const sink = new PassThrough()
  sink.on('data', chunk => out.push(chunk))
  docker.modem.demuxStream(new PassThrough().end(raw) as never, sink, sink)
  await new Promise(resolve => {
    setImmediate(resolve)
  })
  return Buffer.concat(out).toString('utf8')
}
