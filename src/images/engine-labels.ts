import {request} from 'node:http'

/** The Docker engine's socket when DOCKER_HOST names none, as the Docker CLI and dockerode assume. */
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock'

/** Where the Docker engine is: DOCKER_HOST, or the default socket. */
export function dockerEndpoint(): string {
  return process.env.DOCKER_HOST ?? `unix://${DEFAULT_DOCKER_SOCKET}`
}

/**
 * An image's labels from the Docker engine in one HTTP request, without
 * loading the Docker client (dockerode and its dependencies cost a Kubernetes
 * deploy about 50 ms of start-up for this one question). Engines on a unix
 * socket or plain tcp:// only; `undefined` means "ask dockerode" (ssh://, TLS).
 * An image the engine does not have, or an engine that does not answer, is
 * `null`: the caller falls back to the runtime this CLI packs. What the engine
 * answers is checked: labels are strings, or they are ignored.
 */
export async function engineImageLabels(
  ref: string,
  dockerHost = process.env.DOCKER_HOST,
): Promise<Record<string, string> | null | undefined> {
  const host = dockerHost ?? `unix://${DEFAULT_DOCKER_SOCKET}`
  let target: {socketPath: string} | {host: string; port: number}
  if (host.startsWith('unix://')) target = {socketPath: host.slice('unix://'.length)}
  else if (host.startsWith('tcp://') && !process.env.DOCKER_TLS_VERIFY) {
    const url = new URL(`http://${host.slice('tcp://'.length)}`)
    target = {host: url.hostname, port: Number(url.port || 2375)}
  } else return undefined

  return new Promise(resolve => {
    const req = request({...target, path: `/images/${encodeURIComponent(ref)}/json`, method: 'GET', timeout: 2000}, response => {
      const parts: Buffer[] = []
      let size = 0
      response.on('data', (chunk: Buffer) => {
        size += chunk.length
        // An image's inspect document is a few KiB; far more is not an engine answering.
        if (size > 4 << 20) req.destroy()
        else parts.push(chunk)
      })
      response.on('error', () => resolve(null))
      response.on('end', () => {
        if (response.statusCode !== 200) return resolve(null)
        try {
          const labels = (JSON.parse(Buffer.concat(parts).toString('utf8')) as {Config?: {Labels?: unknown}})?.Config?.Labels ?? {}
          const valid = typeof labels === 'object' && labels !== null && Object.values(labels).every(value => typeof value === 'string')
          resolve(valid ? (labels as Record<string, string>) : null)
        } catch {
          resolve(null)
        }
      })
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(null))
    req.end()
  })
}
