import {UsageError} from '../errors.js'

/**
 * The platforms the images are built for: ONNX Runtime ships Linux builds for
 * x64 and arm64 only (onnxruntime-node's bin/napi-v*\/linux/{x64,arm64}), so
 * those are the API image's, and the loader follows the same list.
 */
export const PLATFORMS = ['linux/amd64', 'linux/arm64'] as const
export type Platform = (typeof PLATFORMS)[number]

/** The base image mlops builds from when none is named. */
export const DEFAULT_BASE_IMAGE = 'node:20-slim'

/** What a user may write for each platform: the OCI name, with arm64's v8 variant spelled out or not. */
const SPELLINGS: Record<string, Platform> = {
  'linux/amd64': 'linux/amd64',
  'linux/arm64': 'linux/arm64',
  'linux/arm64/v8': 'linux/arm64',
}

/**
 * The values of a repeatable flag, each of which may be a comma-separated list. oclif hands a
 * repeatable flag's environment variable over as one string, the flag itself as an array.
 */
function commaList(values: string | readonly string[]): string[] {
  return [values].flat().flatMap(value => value.split(','))
}

/** The architecture part of a platform (amd64, arm64): the TARGETARCH build argument and a tag's suffix. */
export function archOf(platform: Platform): 'amd64' | 'arm64' {
  return platform.slice('linux/'.length) as 'amd64' | 'arm64'
}

/**
 * Platform names from flags, MLOPS_* or mlops.yaml: each value may hold a comma-separated list.
 * Duplicates are dropped, the order kept; anything else is a usage error naming where it came from.
 */
export function parsePlatforms(values: string | readonly string[], source: string): Platform[] {
  const platforms: Platform[] = []
  for (const value of commaList(values)) {
    const name = value.trim()
    if (!name) continue
    const platform = SPELLINGS[name.toLowerCase()]
    if (!platform)
      throw new UsageError(
        `invalid ${source} "${name}": mlops images are built for ${PLATFORMS.join(' and ')} (the Linux builds ONNX Runtime ships)`,
        {suggestion: `e.g. ${source} ${PLATFORMS.join(',')}`},
      )
    if (!platforms.includes(platform)) platforms.push(platform)
  }

  if (platforms.length === 0) throw new UsageError(`${source} names no platform`, {suggestion: `e.g. ${source} linux/amd64`})
  return platforms
}

/**
 * The platform of an engine or a node as it reports itself (Go's GOOS/GOARCH names, or uname's),
 * or undefined when it is not one the images can be built for.
 */
export function platformOf(os: string | undefined, architecture: string | undefined): Platform | undefined {
  const arch = {x86_64: 'amd64', aarch64: 'arm64'}[architecture ?? ''] ?? architecture
  return SPELLINGS[`${os ?? ''}/${arch ?? ''}`.toLowerCase()]
}

/** The printable platform of an engine or node that reports one mlops does not build for. */
export function describePlatform(os: string | undefined, architecture: string | undefined): string {
  return `${os ?? '?'}/${architecture ?? '?'}`.replaceAll(/[^\w./-]/g, '?').slice(0, 64)
}

/**
 * The base image for each platform: `--base-image` values (IMAGE for every platform, or
 * PLATFORM=IMAGE for one; comma-separated lists too, as MLOPS_BASE_IMAGE gives them), else
 * image.base (one image, or one per platform), else node:20-slim. Within each of the two, a value
 * for one platform wins over a value for all.
 */
export function baseImages(
  platforms: readonly Platform[],
  flagValues: string | readonly string[],
  configured: string | Partial<Record<Platform, string>> | undefined,
): Record<Platform, string> {
  let flagAll: string | undefined
  const flagOne: Partial<Record<Platform, string>> = {}
  for (const value of commaList(flagValues)) {
    const equals = value.indexOf('=')
    const image = (equals === -1 ? value : value.slice(equals + 1)).trim()
    if (!image)
      throw new UsageError(`invalid --base-image "${value}": no image named`, {suggestion: 'e.g. --base-image linux/arm64=node:20-slim'})
    if (equals === -1) flagAll = image
    else flagOne[parsePlatforms([value.slice(0, equals)], '--base-image')[0]] = image
  }

  const configOne = typeof configured === 'object' ? configured : {}
  const configAll = typeof configured === 'string' ? configured : undefined
  return Object.fromEntries(platforms.map(p => [p, flagOne[p] ?? flagAll ?? configOne[p] ?? configAll ?? DEFAULT_BASE_IMAGE])) as Record<
    Platform,
    string
  >
}

/**
 * The local tag of one platform's image when several are built: <tag>-<arch>. The engine's
 * classic image store keeps one image per tag, so the plain tag names one of them (the engine's
 * own platform), and image push joins the per-platform tags into one index under the plain tag.
 */
export function platformRef(ref: string, platform: Platform): string {
  return `${ref}-${archOf(platform)}`
}

/** The platforms named for image build and push: --platform, else image.platforms; undefined when neither names any. */
export function requestedPlatforms(flag: string[] | undefined, configured: readonly string[] | undefined): Platform[] | undefined {
  if (flag) return parsePlatforms(flag, '--platform')
  return configured ? parsePlatforms(configured, 'image.platforms') : undefined
}
