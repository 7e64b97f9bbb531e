import {readFileSync, readdirSync} from 'node:fs'

/** The command line of a live process (a zombie has exited: not live), or undefined. */
function liveCommandLine(pid: number): string | undefined {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0]
    if (state === 'Z') return undefined
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ')
  } catch {
    return undefined
  }
}

/** Live processes whose command line contains `text`, by PID (this process left out). */
export function processesWith(text: string): Map<number, string> {
  const found = new Map<number, string>()
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid) || pid === process.pid) continue
    const cmdline = liveCommandLine(pid)
    if (cmdline?.includes(text)) found.set(pid, cmdline)
  }

  return found
}

/**
 * Whether `pid` still runs the program whose command line contains `text`:
 * false once it has exited (a zombie included), and false when the PID was
 * taken again by another program.
 */
export function stillRunning(pid: number, text: string): boolean {
  return liveCommandLine(pid)?.includes(text) ?? false
}
