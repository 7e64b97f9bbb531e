import type {Ora} from 'ora'

import {formatBytes} from '../util/text.js'

/**
 * Spinner and byte progress on stderr, only for a person at a terminal:
 * off under --json, without a TTY, in CI, and with MLOPS_NO_PROGRESS set.
 */
export class Progress {
  private spinner?: Ora
  private lastUpdate = 0
  private transferStart = 0

  private constructor(private readonly ora?: typeof import('ora').default) {}

  /** ora is loaded only when progress will show, keeping it off the start-up path of scripts and CI. */
  static async for(options: {json: boolean}): Promise<Progress> {
    const enabled = !options.json && Boolean(process.stderr.isTTY) && !process.env.CI && !process.env.MLOPS_NO_PROGRESS
    return new Progress(enabled ? (await import('ora')).default : undefined)
  }

  start(text: string): void {
    if (!this.ora) return
    this.spinner = this.ora({text, stream: process.stderr}).start()
    this.transferStart = Date.now()
  }

  /** Byte progress, throttled to ten updates a second. */
  bytes(prefix: string): (done: number, total: number) => void {
    return (done, total) => {
      if (!this.spinner) return
      const now = Date.now()
      if (now - this.lastUpdate < 100 && done < total) return
      this.lastUpdate = now
      const seconds = Math.max((now - this.transferStart) / 1000, 0.001)
      const percent = total > 0 ? Math.floor((done / total) * 100) : 100
      this.spinner.text = `${prefix} ${percent}% ${formatBytes(done)}/${formatBytes(total)} ${formatBytes(done / seconds)}/s`
    }
  }

  text(text: string): void {
    if (this.spinner) this.spinner.text = text
  }

  succeed(text?: string): void {
    this.spinner?.succeed(text)
    this.spinner = undefined
  }

  stop(): void {
    this.spinner?.stop()
    this.spinner = undefined
  }
}
