/**
 * A figure from a model server's /metrics (Prometheus text): the sum of every series of `name`
 * whose labels include `labels` (e.g. route="/predict"). Tests wait on these, the events the
 * server itself reports, instead of sleeping for a guessed time.
 */
export async function metric(url: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  let sum = 0
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line)
    if (match && match[1] === name && (match[2] ?? '').includes(labels)) sum += Number(match[3])
  }

  return sum
}
