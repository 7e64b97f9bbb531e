import {type Platform, describePlatform, platformOf} from '../../images/platforms.js'
import {quoteServerText} from '../../util/text.js'
import type {KubeClients} from './client.js'
import {nodeLabelSelector} from './delivery.js'

/**
 * Whether the nodes the pods may go to (deploy.nodeSelector) can run the images: each node's
 * nodeInfo platform against the platforms image push recorded for the API image (its index's
 * entries, or the one image's). A sentence naming the nodes that cannot, or undefined when all
 * can, or when the nodes cannot be read (a deployer often may not list nodes): a warning, never a
 * refusal, since a node pool of the missing platform may be about to come up.
 */
export async function nodePlatformWarning(
  clients: KubeClients,
  image: {ref: string; platforms: readonly Platform[]},
  nodeSelector: Record<string, string> | null | undefined,
): Promise<string | undefined> {
  const labelSelector = nodeLabelSelector(nodeSelector)
  const nodes = await clients.core
    .listNode({labelSelector})
    .then(list => list.items)
    .catch(() => undefined)
  if (!nodes || nodes.length === 0) return undefined
  const others = nodes.flatMap(node => {
    const {operatingSystem, architecture} = node.status?.nodeInfo ?? {}
    const platform = platformOf(operatingSystem, architecture)
    return platform && image.platforms.includes(platform)
      ? []
      : [`${quoteServerText(node.metadata?.name ?? 'a node')} (${describePlatform(operatingSystem, architecture)})`]
  })
  if (others.length === 0) return undefined
  const shown = others.slice(0, 5).join(', ') + (others.length > 5 ? ` and ${others.length - 5} more` : '')
  const which =
    others.length === nodes.length
      ? `no node${labelSelector ? ` matching ${labelSelector}` : ''} can run it`
      : `pods on ${shown} cannot start`
  return (
    `${image.ref} is built for ${image.platforms.join(', ')} only, and ${which}` +
    (others.length === nodes.length ? ` (${shown})` : '') +
    `: build and push it for them (mlops image build --platform, image.platforms), or pin the pods to nodes of its platform (deploy.nodeSelector kubernetes.io/arch)`
  )
}
