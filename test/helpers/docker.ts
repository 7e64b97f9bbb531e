import type Docker from 'dockerode'
import {pack} from 'tar-stream'

/** An image FROM scratch carrying only labels: no base image needed, nothing to run. */
export async function labelledImage(docker: Docker, tag: string, labels: Record<string, string>): Promise<void> {
  const context = pack()
  context.entry(
    {name: 'Dockerfile'},
    `FROM scratch\n${Object.entries(labels)
      .map(([k, v]) => `LABEL ${k}="${v}"`)
      .join('\n')}\n`,
  )
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
