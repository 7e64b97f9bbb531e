import {Flags} from '@oclif/core'

import {redact, redactJson} from '../util/redact.js'

export type LogFormat = 'json' | 'text'
export type Logger = (level: 'error' | 'info', msg: string, fields?: Record<string, unknown>) => void

export const logFormatFlag = Flags.string({
  summary: 'Log lines on stderr: json (one object a line, for containers) or text. Default: text on a terminal, json otherwise.',
  options: ['json', 'text'],
  env: 'MLOPS_LOG_FORMAT',
  helpGroup: 'GLOBAL',
})

export function resolveLogFormat(flag: string | undefined): LogFormat {
  if (flag === 'json' || flag === 'text') return flag
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
      process.stderr.write(redact(`${level === 'error' ? 'error: ' : ''}${msg}${details ? `  ${details}` : ''}\n`))
    }
  }
}
