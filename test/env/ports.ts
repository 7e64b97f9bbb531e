export {freePort} from '../../src/util/net.js'

export async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await new Promise(resolve => {
      setTimeout(resolve, 50)
    })
  }

  throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`)
}
