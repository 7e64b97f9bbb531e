import {NotFoundError} from '../../errors.js'
import type {Delivery, DeliveryRequest} from '../../pod/contract.js'
import type {ModelManifest} from '../../store/manifest.js'
import {quoteServerText} from '../../util/text.js'
import type {Publication} from '../../store/model-store.js'
import type {KubeClients} from './client.js'
import {kubeError} from './errors.js'

export interface DeliveryChoice {
  delivery: Delivery
  /** Why, in words, for the person deploying. */
  reason: string
}

/** Image volumes: on by default from Kubernetes 1.35 (beta), GA in 1.36; runtimes that mount images. */
const MIN_KUBERNETES = [1, 35] as const
const MIN_RUNTIME: Record<string, readonly [number, number]> = {containerd: [2, 1], 'cri-o': [1, 31]}

/** The published image to use: the one in `preferred` (deploy.modelImage), else the latest publication. */
export function pickPublication(publications: Publication[], preferred?: string): Publication | undefined {
  if (preferred) return publications.find(p => p.repository === preferred)
  return [...publications].sort((a, b) => a.publishedAt.localeCompare(b.publishedAt)).at(-1)
}

/**
 * How pods get the model. init-container: the loader. image-volume: the
 * published image, pinned by digest (no publication is an error). auto: the
 * image volume when the model is published and the API server and every
 * node the pods may run on can mount image volumes; otherwise the loader,
 * saying why. Without a cluster to ask (render, --dry-run client) auto renders the loader.
 */
export async function chooseDelivery(input: {
  requested: DeliveryRequest
  manifest: ModelManifest
  publications: Publication[]
  preferred?: string
  clients?: KubeClients
  nodeSelector?: Record<string, string> | null
}): Promise<DeliveryChoice> {
  const {requested, manifest} = input
  const model = `${manifest.name}@${manifest.version}`
  if (requested === 'init-container') return {delivery: {kind: 'init-container'}, reason: 'the loader pulls the model from the store'}
  const publication = pickPublication(input.publications, input.preferred)
  const imageVolume = (why: string): DeliveryChoice => ({
    delivery: {
      kind: 'image-volume',
      image: `${publication!.repository}@${publication!.digest}`,
      ...(publication!.reference ? {reference: true} : {}),
    },
    reason: why,
  })
  if (requested === 'image-volume') {
    if (!publication) {
      throw new NotFoundError(
        input.preferred
          ? `${model} was not published to ${input.preferred}`
          : `${model} has no published model image, which delivery image-volume needs`,
        {
          suggestion: `mlops model publish ${model}${input.preferred ? ` --to ${input.preferred}` : ''}, or deploy.delivery init-container`,
        },
      )
    }

    return imageVolume(`deploy.delivery image-volume: ${publication.repository}@${publication.digest.slice(0, 19)}…`)
  }

  const loader = (why: string): DeliveryChoice => ({
    delivery: {kind: 'init-container'},
    reason: `auto: ${why}; the loader pulls the model from the store`,
  })
  if (!publication)
    return loader(
      input.preferred
        ? `${model} was not published to ${input.preferred}`
        : `${model} has no published model image (mlops model publish ${model})`,
    )
  if (!input.clients) return loader('no cluster to ask whether it can mount image volumes')
  const support = await clusterSupport(input.clients, input.nodeSelector ?? undefined)
  if (support.missing) return loader(support.missing)
  return imageVolume(`auto: ${support.found}, and ${model} is published as ${publication.repository}`)
}

/** Whether the API server and the nodes the pods may land on can mount image volumes. */
/** deploy.nodeSelector as a label selector for listing the nodes the pods may go to. */
export function nodeLabelSelector(nodeSelector: Record<string, string> | null | undefined): string | undefined {
  return nodeSelector
    ? Object.entries(nodeSelector)
        .map(([key, value]) => `${key}=${value}`)
        .join(',')
    : undefined
}

async function clusterSupport(clients: KubeClients, nodeSelector?: Record<string, string>): Promise<{missing?: string; found?: string}> {
  let server: {major: string; minor: string; gitVersion: string}
  try {
    // client.ts loaded here, not imported at the top: render reaches this module and needs no client.
    const {serverVersion} = await import('./client.js')
    server = await serverVersion(clients)
  } catch (error) {
    throw kubeError(error, clients.server, 'reading the server version')
  }

  const serverVersion = [Number.parseInt(server.major, 10), Number.parseInt(server.minor, 10)]
  if (!atLeast(serverVersion, MIN_KUBERNETES))
    return {
      missing: `the API server is ${quoteServerText(server.gitVersion)}; image volumes need Kubernetes ${MIN_KUBERNETES.join('.')} or newer`,
    }
  const labelSelector = nodeLabelSelector(nodeSelector)
  let nodes
  try {
    nodes = (await clients.core.listNode({labelSelector})).items
  } catch (error) {
    const mapped = kubeError(error, clients.server, 'listing nodes')
    // Reading nodes is often not allowed to a deployer: then the nodes cannot be vouched for.
    if ((mapped as {exitCode?: number}).exitCode === 6)
      return {missing: 'the nodes cannot be read (no permission to list nodes) to check their container runtime'}
    throw mapped
  }

  if (nodes.length === 0) return {missing: `no node${labelSelector ? ` matches ${labelSelector}` : ''}`}
  const runtimes = new Set<string>()
  for (const node of nodes) {
    // What a node reports is quoted as text from a server: one line, bounded.
    const name = quoteServerText(node.metadata?.name ?? 'a node')
    const kubeletVersion = String(node.status?.nodeInfo?.kubeletVersion ?? '')
    const kubelet = /^v(\d+)\.(\d+)/.exec(kubeletVersion)
    if (!kubelet)
      return {
        missing: `node ${name} runs kubelet ${quoteServerText(kubeletVersion) || '(unknown)'}, which is no Kubernetes version; image volumes need ${MIN_KUBERNETES.join('.')} or newer`,
      }
    if (!atLeast([Number(kubelet[1]), Number(kubelet[2])], MIN_KUBERNETES))
      return {missing: `node ${name} runs kubelet ${quoteServerText(kubeletVersion)}, older than ${MIN_KUBERNETES.join('.')}`}
    const runtime = String(node.status?.nodeInfo?.containerRuntimeVersion ?? '')
    const match = /^([a-z-]+):\/\/v?(\d+)\.(\d+)/.exec(runtime)
    const minimum = match ? MIN_RUNTIME[match[1]] : undefined
    if (!match || !minimum || !atLeast([Number(match[2]), Number(match[3])], minimum)) {
      return {
        missing: `node ${name} runs ${quoteServerText(runtime) || 'an unknown runtime'}, which cannot mount image volumes (containerd 2.1+ or CRI-O 1.31+ can)`,
      }
    }

    runtimes.add(quoteServerText(runtime.replace('://', ' ')))
  }

  return {
    found: `Kubernetes ${quoteServerText(server.gitVersion)}, ${nodes.length} node${nodes.length === 1 ? '' : 's'} on ${[...runtimes].join(', ')}`,
  }
}

function atLeast(version: number[], minimum: readonly number[]): boolean {
  return version[0] > minimum[0] || (version[0] === minimum[0] && version[1] >= minimum[1])
}
