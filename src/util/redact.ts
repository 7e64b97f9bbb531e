/**
 * One redaction step for everything mlops prints, logs or writes as a
 * termination message: credentials given to it must never come back out.
 * - userinfo in any URL (`http://user:pass@host`, `tcp://u:p@host`): a
 *   --gcs-endpoint, a kubeconfig server, DOCKER_HOST, an error that quotes them;
 * - bearer tokens and PEM private keys, by their shape;
 * - secret-looking query parameters of any URL (`?key=`, `access_token=`,
 *   `X-Goog-Signature=`...): a signed URL or an API key in an endpoint;
 * - values registered as secret: the registry password from the environment,
 *   the value of any --password/--token/--secret/--key given on the
 *   command line (oclif would otherwise echo it in a usage error), and the
 *   password of any USER:PASSWORD@HOST in an argument or an MLOPS_* value,
 *   with a scheme or without, wherever a message later quotes it.
 */
// Up to the last @ before the host: a password may hold a raw @ (http://user:p@ss@host).
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#'"]+@/gi
// Credentials recognised by their shape, registered or not: bearer tokens and PEM private keys.
const BEARER = /\b(Bearer\s+)[A-Za-z0-9._~+/-]{8,}=*/g
// A query parameter named like a credential, up to the next & or the end of the URL.
const QUERY_SECRET =
  /([?&](?:[a-z0-9_.-]*[_-])?(?:key|token|access_token|secret|password|passwd|sig|signature|credential|auth)=)[^\s&#'"]+/gi
const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g
const SECRET_ENV = ['MLOPS_REGISTRY_PASSWORD']
const SECRET_FLAG = /^--?(password|passwd|token|secret|key|api-key)(=(.*))?$/i
// USER:PASSWORD@HOST in any value, with a scheme or without (a registry given as u:p@host/repo):
// the password is a secret wherever the value is later quoted, whole or in part.
const VALUE_USERINFO = /([^\s/:@=]+):([^\s/@]+)@[a-z0-9[]/gi
const secrets = new Set<string>()

export const REDACTED = '***'

/** Registers the secrets this process was given: the environment's and the command line's. */
export function registerProcessSecrets(argv: string[] = process.argv.slice(2)): void {
  for (const name of SECRET_ENV) addSecret(process.env[name])
  for (const [index, arg] of argv.entries()) {
    const flag = SECRET_FLAG.exec(arg)
    if (flag) addSecret(flag[2] === undefined ? argv[index + 1] : flag[3])
  }

  const mlopsValues = Object.entries(process.env).flatMap(([name, value]) => (name.startsWith('MLOPS_') && value ? [value] : []))
  for (const value of [...argv, ...mlopsValues]) for (const match of value.matchAll(VALUE_USERINFO)) addSecret(match[2])
}

export function addSecret(value: string | undefined): void {
  // Very short values would blank out ordinary words.
  if (value && value.length >= 4) secrets.add(value)
}

export function redact(text: string): string {
  let out = text
    .replaceAll(USERINFO, `$1${REDACTED}@`)
    .replaceAll(BEARER, `$1${REDACTED}`)
    .replaceAll(QUERY_SECRET, `$1${REDACTED}`)
    .replaceAll(PRIVATE_KEY, REDACTED)
  for (const secret of secrets) out = out.replaceAll(secret, REDACTED)
  return out
}

/** The same for a value printed as JSON: every string in it (keys too), each on its own, so no escape is ever cut. */
export function redactJson<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T
  if (Array.isArray(value)) return value.map(item => redactJson(item)) as T
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [redact(key), redactJson(item)])) as T
}
