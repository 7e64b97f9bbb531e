import {ConflictError, type MlopsError, NotFoundError, PermissionError, UnavailableError, UsageError, errorMessage} from '../../errors.js'

/*
 * What a failed Kubernetes API call means, apart from the client (client.ts):
 * mapping an error needs no client code, so a module that only maps errors
 * (and render, which reaches delivery.ts) does not load @kubernetes/client-node.
 */

/** The API server's own message for a failed call. */
export function apiMessage(error: unknown): string {
  const {body} = error as {body?: unknown}
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as {message?: string}
      if (parsed.message) return parsed.message
    } catch {
      return body.split('\n')[0]
    }
  }

  return errorMessage(error).split('\n')[0]
}

export function apiStatus(error: unknown): number | undefined {
  const {code} = error as {code?: unknown}
  return typeof code === 'number' ? code : undefined
}

/** Maps an API server error to the documented exit codes, keeping the server's message. */
export function kubeError(error: unknown, server: string, what: string): MlopsError | unknown {
  const status = apiStatus(error)
  const message = apiMessage(error)
  if (status === 403 || status === 401)
    return new PermissionError(`${what}: ${message}`, {
      suggestion: 'ask for RBAC rights to this verb and resource, or use another --context',
    })
  if (status === 409) {
    return new ConflictError(`${what}: ${message}`, {
      suggestion: 'another field manager owns these fields; pass --force-conflicts to take them over',
    })
  }

  if (status === 404) return new NotFoundError(`${what}: ${message}`)
  if (status === undefined && /HTTP protocol is not allowed/.test(message)) {
    return new UsageError(`${what}: the kubeconfig's server ${server} is plain http`, {
      suggestion: 'use its https:// address, or set insecure-skip-tls-verify: true for that cluster',
    })
  }

  if (status === 400 || status === 422) return new UsageError(`${what}: ${message}`)
  // Server-side apply reports a value it cannot decode (cpu: abc) as a 500 "failed to convert": the input is at fault.
  if (status === 500 && /failed to convert|unable to convert|must match the regular expression/.test(message))
    return new UsageError(`${what}: ${message}`)
  if (status !== undefined && status >= 500) return new UnavailableError(`${what}: the API server failed: ${message}`)
  if (
    status === undefined &&
    /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|socket hang up|fetch failed/i.test(
      `${errorMessage(error)} ${errorMessage((error as {cause?: unknown}).cause)}`,
    )
  ) {
    return new UnavailableError(`cannot reach the Kubernetes API server at ${server}: ${errorMessage(error).split('\n')[0]}`, {
      suggestion: 'check KUBECONFIG / --context and that the cluster is up',
    })
  }

  return error
}
