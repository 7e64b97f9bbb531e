import type Docker from 'dockerode'
import {pack} from 'tar-stream'

/** An image FROM scratch carrying only labels: no base image needed, nothing to run. */
export async function labelledImage(docker: Docker, tag: string, labels: Record<string, string>): Promise<void> {
  await dockerfileImage(
    docker,
    tag,
    `FROM scratch\n${Object.entries(labels)
      .map(([k, v]) => `LABEL ${k}="${v}"`)
      .join('\n')}\n`,
  )
}

/** An image built from a Dockerfile alone (no other files), on host networking, every build error raised. */
export async function dockerfileImage(docker: Docker, tag: string, dockerfile: string): Promise<void> {
  const context = pack()
  context.entry({name: 'Dockerfile'}, dockerfile)
  context.finalize()
  const stream: NodeJS.ReadableStream = await docker.buildImage(context as unknown as NodeJS.ReadableStream, {t: tag, networkmode: 'host'})
  await new Promise((resolve, reject) => {
    docker.modem.followProgress(stream, (error, events) => {
      const failed = events?.find((e: {errorDetail?: unknown}) => e.errorDetail)
      if (error || failed) reject(error ?? new Error(JSON.stringify(failed)))
      else resolve(events)
    })
  })
}
