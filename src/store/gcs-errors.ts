import {readFileSync} from 'node:fs'

import {NotFoundError, PermissionError, UsageError} from '../errors.js'

/**
 * How a failed GCS call is told to the user: HTTP 401/403, a key file that cannot be used, an
 * endpoint that is no GCS JSON API, and a missing bucket become the documented errors (exit codes
 * 6, 2, 2, 3); anything else is left as it is (the retry policy judges it).
 */
export function gcsError(error: unknown, store: {uri: string; bucket: string; endpoint?: string; anonymous?: boolean}): unknown {
  const status = statusOf(error)
  if (status === 401 || status === 403) {
    return new PermissionError(`${store.uri}: permission denied (${firstLine(error)})`, {
      suggestion: store.anonymous
        ? 'the bucket is not public: drop --anonymous and use credentials (gcloud auth application-default login, or GOOGLE_APPLICATION_CREDENTIALS)'
        : 'check the credentials (gcloud auth application-default login, or GOOGLE_APPLICATION_CREDENTIALS) and their roles on the bucket',
    })
  }

  const credentials = credentialsError(error)
  if (credentials) return credentials
  // A server that answers in HTML (or anything but JSON) is not a GCS API, whatever it says.
  const {headers, response} = (error ?? {}) as {headers?: Record<string, unknown>; response?: {headers?: Record<string, unknown>}}
  const contentType = String(headers?.['content-type'] ?? response?.headers?.['content-type'] ?? '')
  // GCS states application/json on every error; a 404 that states nothing is a plain web server.
  const stated = headers !== undefined || response?.headers !== undefined
  if (status !== undefined && (contentType === '' ? stated && status === 404 : !/json/i.test(contentType))) {
    return new UsageError(
      `${store.endpoint ?? 'the storage endpoint'} answered HTTP ${status} with ${contentType.split(';')[0] || 'no content type'}: it is not a GCS JSON API`,
      {
        suggestion:
          'check --gcs-endpoint / MLOPS_GCS_ENDPOINT / store.endpoint (fake-gcs-server answers at http://HOST:PORT, without a path)',
      },
    )
  }

  // stat, read and delete handle an object's 404 themselves; one reaching here (list, write, upload) is the bucket's.
  if (status === 404) {
    return new NotFoundError(`bucket ${store.bucket} does not exist`, {
      suggestion: 'check --store / MLOPS_STORE / store.uri in mlops.yaml',
    })
  }

  return error
}

export function statusOf(error: unknown): number | undefined {
  const {code, status} = (error ?? {}) as {code?: unknown; status?: unknown}
  if (typeof code === 'number') return code
  if (typeof status === 'number') return status
  return undefined
}

/**
 * A key file that cannot be used, said without its content: the JSON parser's
 * message quotes the file's first characters, which may be key material.
 */
function credentialsError(error: unknown): Error | undefined {
  const file = process.env.GOOGLE_APPLICATION_CREDENTIALS
  const where = file ? `GOOGLE_APPLICATION_CREDENTIALS (${file})` : 'the application default credentials'
  const fix = 'point GOOGLE_APPLICATION_CREDENTIALS at a service-account key (JSON), or run gcloud auth application-default login'
  const message = error instanceof Error ? error.message : ''
  // The auth library's "The file at X does not exist, or it is not a file." for a missing path or a folder.
  if (file && /does not exist, or it is not a file/.test(message)) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new PermissionError(`${where} does not exist`, {suggestion: fix})
    return new UsageError(`${where} is not a file`, {suggestion: fix})
  }

  if (error instanceof SyntaxError) return new UsageError(`${where} is not a JSON key file`, {suggestion: fix})
  if (
    /DECODER routines|PEM|private key|client_email|No key or keyFile set|incoming JSON object does not|Must pass in a JSON object/i.test(
      message,
    )
  ) {
    return new UsageError(`${where} is not a usable service-account key`, {suggestion: fix})
  }

  if (/Could not load the default credentials/i.test(message))
    return new PermissionError(`no Google credentials found for ${where}`, {suggestion: fix})
  if (/invalid_grant|invalid_client|unauthorized_client/i.test(message))
    return new PermissionError(
      `${where} was refused by the token endpoint (${/invalid_grant|invalid_client|unauthorized_client/i.exec(message)![0]})`,
      {
        suggestion:
          credentialsType(file) === 'external_account'
            ? "Workload Identity Federation refused the exchange: check the provider's audience and attribute condition, and that the CI job's OIDC token is fresh"
            : 'the key may be revoked or expired: create a new key, or use another account',
      },
    )
  return undefined
}

/** The `type` of a credentials file (service_account, external_account, ...), never any other part of it. */
function credentialsType(file: string | undefined): string | undefined {
  if (!file) return undefined
  try {
    const type = (JSON.parse(readFileSync(file, 'utf8')) as {type?: unknown})?.type
    return typeof type === 'string' ? type : undefined
  } catch {
    return undefined
  }
}

/** The first line of an error's message, without our HTTP client's status prefix (the storage library's errors have none). */
function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0].replace(/^HTTP \d{3}: /, '')
}
