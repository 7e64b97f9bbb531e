import {Flags} from '@oclif/core'

import {redact, redactJson} from '../util/redact.js'

export type LogFormat = 'json' | 'text'
export type Logger = (level: 'error' | 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void

const LOG_FORMAT_ENV = 'MLOPS_LOG_FORMAT'

/** --log-format of the commands that run in containers (serve, the loader); `unset` says how they log without it. */
export function logFormatFlag(unset: string) {
  return Flags.string({
    summary: `Log lines on stderr: json (one object a line, for containers) or text. Default: ${unset}.`,
    options: ['json', 'text'],
    env: LOG_FORMAT_ENV,
    helpGroup: 'GLOBAL',
  })
}

/**
 * The log format a command runs with: --log-format (or MLOPS_LOG_FORMAT through the flag), else
 * `unset`. Flags may not have parsed (one way to fail): the environment still says which format.
 */
export function resolveLogFormat<Unset extends LogFormat | undefined>(
  flags: {'log-format'?: string} | undefined,
  unset: Unset,
): LogFormat | Unset {
  const chosen = flags ? flags['log-format'] : process.env[LOG_FORMAT_ENV]
  return chosen === 'json' || chosen === 'text' ? chosen : unset
}

/** Text for a person at a terminal, JSON lines for a container's log. */
export function terminalLogFormat(): LogFormat {
  return process.stderr.isTTY ? 'text' : 'json'
}

/** Structured log lines on stderr, so that stdout stays for results. */
export function createLogger(format: LogFormat, component: string): Logger {
  return (level, msg, fields = {}) => {
    if (format === 'json') {
      process.stderr.write(`${JSON.stringify(redactJson({time: new Date().toISOString(), level, component, msg, ...fields}))}\n`)
    } else {
      const details = Object.entries(fields)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ')
      process.stderr.write(
        redact(`${level === 'info' ? '' : `${level === 'warn' ? 'warning' : level}: `}${msg}${details ? `  ${details}` : ''}\n`),
      )
    }
  }
}
