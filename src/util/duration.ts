import {UsageError} from '../errors.js'

/** 90, 90s, 5m, 1h30m → milliseconds; `flag` names the flag in the error. */
export function parseDuration(text: string, flag = '--timeout'): number {
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$/.exec(text.trim())
  if (!match || text.trim() === '') throw new UsageError(`invalid ${flag} "${text}": use e.g. 90s, 5m or 1h30m`)
  const [, h = '0', m = '0', s = '0'] = match
  const ms = ((Number(h) * 60 + Number(m)) * 60 + Number(s)) * 1000
  if (ms <= 0) throw new UsageError(`invalid ${flag} "${text}": it must be more than 0`)
  return ms
}
