/**
 * Error classes carrying the documented exit codes (README "Exit codes").
 * Services throw these; the base command maps them to one line on stderr,
 * a suggestion, a JSON error object under --json, and the exit code.
 */
export const ExitCode = {
  OK: 0,
  UNEXPECTED: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  CONFLICT: 4,
  INTEGRITY: 5,
  PERMISSION: 6,
  UNAVAILABLE: 7,
  INCOMPATIBLE: 8,
  ROLLOUT_FAILED: 9,
  BUILD_FAILED: 10,
  EXPECTATION_FAILED: 11,
} as const

export type ExitCodeName = keyof typeof ExitCode

export interface ErrorOptions {
  suggestion?: string
  cause?: unknown
}

export class MlopsError extends Error {
  readonly code: ExitCodeName = 'UNEXPECTED'
  readonly suggestion?: string

  constructor(message: string, options: ErrorOptions = {}) {
    super(message, {cause: options.cause})
    this.suggestion = options.suggestion
    this.name = new.target.name
  }

  get exitCode(): number {
    return ExitCode[this.code]
  }
}

/** Bad flags, arguments or input files given by the user. */
export class UsageError extends MlopsError {
  readonly code = 'USAGE'
}

/** mlops.yaml or MLOPS_* settings that do not validate. */
export class ConfigError extends MlopsError {
  readonly code = 'USAGE'
}

export class NotFoundError extends MlopsError {
  readonly code = 'NOT_FOUND'
}

/** Already exists, precondition failed, still referenced. */
export class ConflictError extends MlopsError {
  readonly code = 'CONFLICT'
}

/** Checksum mismatch, invalid or corrupt model file. */
export class IntegrityError extends MlopsError {
  readonly code = 'INTEGRITY'
}

export class PermissionError extends MlopsError {
  readonly code = 'PERMISSION'
}

/** A server stayed unreachable (or kept failing) for the whole retry window. */
export class UnavailableError extends MlopsError {
  readonly code = 'UNAVAILABLE'
}

/** A model the runtime cannot run (opset or operator it does not support). */
export class IncompatibleError extends MlopsError {
  readonly code = 'INCOMPATIBLE'
}

/** A rollout (Kubernetes or local) that did not become ready: the message carries the diagnosis. */
export class RolloutError extends MlopsError {
  readonly code = 'ROLLOUT_FAILED'
}

/** An image build whose Dockerfile step failed. */
export class BuildError extends MlopsError {
  readonly code = 'BUILD_FAILED'
}

/** A prediction that did not match --expect (CI smoke tests). */
export class ExpectationError extends MlopsError {
  readonly code = 'EXPECTATION_FAILED'
}

export function isMlopsError(error: unknown): error is MlopsError {
  if (error instanceof MlopsError) return true
  if (!(error instanceof Error)) return false
  const {code, exitCode} = error as Partial<MlopsError>
  return typeof code === 'string' && code in ExitCode && typeof exitCode === 'number'
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
