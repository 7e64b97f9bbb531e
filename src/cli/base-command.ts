import {Command, Flags, type Interfaces} from '@oclif/core'

import {type ProjectConfig, loadConfig} from '../config/load.js'
import {ExitCode, isMlopsError, systemError} from '../errors.js'
import {redact, redactJson, registerProcessSecrets} from '../util/redact.js'
import {annotateFailure} from './ci.js'
import {type ErrorJson, reportFailure} from './failure.js'
import type {Logger} from './log.js'
import {Progress} from './progress.js'

export type CommandFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>
export type CommandArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

export type {ErrorJson} from './failure.js'

/**
 * The one base command: --json, --config, config loading (mlops.yaml, then
 * MLOPS_* variables through each flag's `env`, then flags), progress that
 * stays off for machines, and the mapping of every error to a documented
 * exit code with a one-line message and a suggestion.
 */
export abstract class BaseCommand<T extends typeof Command> extends Command {
  static enableJsonFlag = true

  static baseFlags = {
    config: Flags.string({
      summary: 'Path to mlops.yaml (default: mlops.yaml in the current folder or the nearest parent).',
      env: 'MLOPS_CONFIG',
      helpGroup: 'GLOBAL',
    }),
  }

  protected flags!: CommandFlags<T>
  protected args!: CommandArgs<T>
  private loadedProject?: ProjectConfig

  public async init(): Promise<void> {
    registerProcessSecrets(this.argv)
    await super.init()
    const {args, flags} = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (super.ctor as typeof BaseCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.flags = flags as CommandFlags<T>
    this.args = args as CommandArgs<T>
  }

  /** mlops.yaml, loaded and validated on first use. */
  protected get project(): ProjectConfig {
    this.loadedProject ??= loadConfig({cwd: process.cwd(), configPath: this.flags.config})
    return this.loadedProject
  }

  protected async progress(): Promise<Progress> {
    return Progress.for({json: this.jsonEnabled()})
  }

  /**
   * Commands that run in containers (serve, the loader) log in a chosen
   * format; under JSON logs their failure is one more JSON line, not text.
   */
  protected failureLog(): {log: Logger; msg: string} | undefined {
    return undefined
  }

  /**
   * Called with a failure as it is reported and exited with, before either: what a command
   * records of it (the loader's termination summary) says the same code, exit code and message.
   */
  protected recordFailure(_failure: ErrorJson['error']): void {}

  /** Human output, with credentials redacted. */
  public log(message = '', ...args: unknown[]): void {
    super.log(redact(message), ...args)
  }

  /**
   * A line for the person running the command (what happened and why), on stderr and redacted:
   * also under --json, whose document is stdout's alone, as kubectl prints its warnings. oclif's
   * logToStderr stays silent under --json, and a CI job would lose why a deploy ran no canary.
   */
  protected note(message: string): void {
    process.stderr.write(`${redact(message)}\n`)
  }

  /** --json output, with credentials redacted. */
  public logJson(json: unknown): void {
    super.logJson(redactJson(json))
  }

  /**
   * oclif names the flag when a value does not parse, also when the value came
   * from the flag's environment variable: then say it was the variable.
   */
  private blameEnvironment(described: ErrorJson['error']): void {
    if (described.code !== 'USAGE') return
    const flag = /--([a-z][a-z0-9-]*)/.exec(described.message)?.[1]
    const definition = flag ? (this.ctor.flags as Record<string, {env?: string}> | undefined)?.[flag] : undefined
    if (!flag || !definition?.env || process.env[definition.env] === undefined) return
    if (this.argv.some(arg => arg === `--${flag}` || arg.startsWith(`--${flag}=`))) return
    described.message = redact(
      `${definition.env}=${process.env[definition.env]} (the environment variable for --${flag}): ${described.message.replace(/^Parsing --[a-z0-9-]+ /, '')}`,
    )
    described.suggestion = `fix or unset ${definition.env}`
  }

  protected async catch(error: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<never> {
    registerProcessSecrets(this.argv)
    const described = redactJson(describeError(error))
    this.blameEnvironment(described)
    this.recordFailure(described)
    const structured = this.jsonEnabled() ? undefined : this.failureLog()
    if (structured) {
      structured.log('error', structured.msg, described)
    } else {
      reportFailure(described, {json: this.jsonEnabled()})
      annotateFailure(this.id?.replaceAll(':', ' ') ?? '', described.message, described.suggestion, {json: this.jsonEnabled()})
      if (described.code === 'UNEXPECTED' && error.stack) {
        this.logToStderr(
          process.env.MLOPS_DEBUG ? redact(error.stack) : 'Set MLOPS_DEBUG=1 for the stack trace; this is a bug if it persists.',
        )
      }
    }

    this.exit(described.exitCode)
  }
}

/** An error as the one line, code and suggestion that every failure ends as. */
export function describeError(thrown: Error & {oclif?: {exit?: number}}): ErrorJson['error'] {
  const error = isMlopsError(thrown) ? thrown : (systemError(thrown) ?? thrown)
  if (isMlopsError(error)) {
    // oclif wraps what a flag's own parser throws in lines of its own: the one line is the error's.
    const wrapped = /^Parsing --[a-z0-9-]+ \n\t([\s\S]*)\nSee more help with --help$/.exec(error.message)
    if (wrapped) return {code: error.code, exitCode: error.exitCode, message: wrapped[1], suggestion: error.suggestion ?? 'see --help'}
    return {code: error.code, exitCode: error.exitCode, message: error.message, suggestion: error.suggestion}
  }

  // oclif's own parse errors (unknown flag, missing argument, bad option value) are usage errors.
  if (error.oclif?.exit !== undefined && error.oclif.exit !== 1) {
    const lines = error.message
      .split('\n')
      .map(line => line.trim())
      .filter(line => line !== '')
    const hint = lines.find(line => line.includes('--help')) ?? 'see --help'
    const message = lines.filter(line => line !== hint).join(' ')
    return {code: 'USAGE', exitCode: ExitCode.USAGE, message, suggestion: hint}
  }

  return {code: 'UNEXPECTED', exitCode: ExitCode.UNEXPECTED, message: error.message.split('\n')[0]}
}
