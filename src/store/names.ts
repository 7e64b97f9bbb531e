import {UsageError} from '../errors.js'

const NAME_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/
const RULE = '1-64 characters from A-Z a-z 0-9 . _ -, not starting with "."'

/** Words that cannot be versions or aliases because the store layout or ref syntax uses them. */
const RESERVED: Record<NameKind, string[]> = {
  // A model named "aliases" or "latest" reads as part of the layout or of a ref in every message.
  'model name': ['aliases', 'latest'],
  version: ['aliases', 'latest'],
  alias: ['aliases', 'latest'],
}

export type NameKind = 'alias' | 'model name' | 'version'

export function validateName(kind: NameKind, value: string): string {
  if (!NAME_PATTERN.test(value)) {
    const shown = value.length > 70 ? `${value.slice(0, 67)}...` : value
    throw new UsageError(`invalid ${kind} "${shown}" (${value.length} characters): use ${RULE}`)
  }

  if (RESERVED[kind].includes(value))
    throw new UsageError(
      `"${value}" is reserved and cannot be used as ${kind === 'alias' ? 'an alias' : kind === 'version' ? 'a version' : 'a model name'}`,
    )
  if (kind === 'alias' && /^\d+$/.test(value)) {
    throw new UsageError(`invalid alias "${value}": an alias cannot be a plain number, which reads as a version`)
  }

  return value
}

export const LATEST = 'latest'

/** NAME@REF where REF is a version, an alias or `latest`. */
export interface ModelRef {
  name: string
  ref: string
}

export function parseModelRef(text: string, options: {defaultRef?: string} = {}): ModelRef {
  // Not echoed: a URL may carry user:password before its "@".
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text))
    throw new UsageError('a model ref is NAME@VERSION (or @ALIAS, @latest), not a URL', {
      suggestion: 'e.g. iris@3; the store is --store / MLOPS_STORE',
    })
  const at = text.indexOf('@')
  const name = at === -1 ? text : text.slice(0, at)
  const ref = at === -1 ? options.defaultRef : text.slice(at + 1)
  if (ref === undefined) {
    throw new UsageError(`"${text}" names no version: use NAME@VERSION`, {
      suggestion: `e.g. ${name}@1; list versions with: mlops model list ${name}`,
    })
  }

  validateName('model name', name)
  if (ref !== LATEST && !NAME_PATTERN.test(ref)) validateName('version', ref)
  return {name, ref}
}

export function formatRef(ref: ModelRef): string {
  return `${ref.name}@${ref.ref}`
}

/** Orders versions the way people number them: 2 < 10, 1.9.0 < 1.10.0. */
export function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', {numeric: true})
}
