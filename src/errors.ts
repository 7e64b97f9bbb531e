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
  /** `mlops model compare`: two models (or a model and a server) answered apart beyond a threshold. */
  DISAGREEMENT: 12,
  /** `mlops deploy --canary` / `--shadow`: a gate failed (error rate, p99 or agreement); the canary or shadow was removed. */
  GATE_FAILED: 13,
  /** Stopped by Ctrl-C or SIGTERM (the shell's 128 + SIGINT), after cleaning up. */
  INTERRUPTED: 130,
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

/** Answers of two models that differ beyond --min-agreement or --max-delta (`mlops model compare`). */
export class DisagreementError extends MlopsError {
  readonly code = 'DISAGREEMENT'
}

/** A canary step or shadow phase whose readings failed a gate: it was removed, the stable serves on (`mlops deploy --canary`, `--shadow`). */
export class GateError extends MlopsError {
  readonly code = 'GATE_FAILED'
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

/**
 * The operating system's refusals that a user can cause (a path that is a
 * file, a folder without write access, a full disk, an address that is not
 * this machine's, a privileged port) as documented errors naming the path or
 * address: never "this is a bug". Undefined for anything else.
 */
export function systemError(error: unknown): MlopsError | undefined {
  const {code, path, dest, syscall, address, port} = (error ?? {}) as NodeJS.ErrnoException & {
    dest?: string
    address?: string
    port?: number
  }
  if (typeof code !== 'string') return undefined
  const target = path ?? dest
  const where = target ? ` ${target}` : ''
  if (syscall === 'listen' || syscall === 'bind' || syscall === 'getaddrinfo') {
    const at = address ?? (error as {hostname?: string}).hostname ?? 'that address'
    if (code === 'EACCES')
      return new PermissionError(`cannot listen on port ${port ?? '?'}: ports below 1024 need root`, {
        suggestion: 'use a port of 1024 or above',
      })
    if (code === 'EADDRINUSE') return new UsageError(`port ${port ?? '?'} on ${at} is already in use`, {suggestion: 'pass another port'})
    if (code === 'ENOTFOUND' || code === 'EADDRNOTAVAIL' || code === 'EAI_AGAIN')
      return new UsageError(`cannot listen on ${at}: not an address of this machine`, {
        suggestion: 'use 0.0.0.0, 127.0.0.1 or an address this machine has',
      })
  }

  switch (code) {
    case 'ENOTDIR':
      return new UsageError(`a part of the path${where} is a file, not a folder`)
    case 'EISDIR':
      return new UsageError(`${target ?? 'the path'} is a folder, not a file`)
    case 'ENOENT':
      return new NotFoundError(`no such file or folder:${where || ' (unnamed)'}`)
    // mkdir -p meeting a file where a folder should be.
    case 'EEXIST':
      return syscall === 'mkdir'
        ? new UsageError(`${target ?? 'the path'} is a file, not a folder`)
        : new ConflictError(`${target ?? 'the path'} already exists`)
    case 'EACCES':
    case 'EPERM':
      return new PermissionError(`permission denied:${where || ' (unnamed)'}`, {
        suggestion: 'check the owner and mode of the file or folder, or choose another one',
      })
    case 'EROFS':
      return new PermissionError(`read-only file system:${where || ' (unnamed)'}`, {suggestion: 'choose a writable location'})
    case 'ENOSPC':
      return new UnavailableError(`no space left on the device${target ? ` for ${target}` : ''}`, {
        suggestion: 'free some space, or choose another location',
      })
    case 'ENAMETOOLONG':
      return new UsageError(`a file name is too long:${where}`)
    default:
      return undefined
  }
}
