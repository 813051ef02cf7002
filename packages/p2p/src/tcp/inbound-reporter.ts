// Rate-limited reports of inbound failures: a flood of refused or timed-out connections
// must not become a flood of log lines. The first few per interval go out one by one,
// the rest as one summary when the interval ends.
import { type P2PError, type P2PErrorCode, SuppressedErrorsError } from '../errors.js'

/** The callback `onInboundError` of the TCP transport. */
export type InboundErrorCallback = (error: P2PError, remoteAddress: string) => void

export class InboundReporter {
  #reported = 0
  #suppressed = 0
  #codes: Partial<Record<P2PErrorCode, number>> = {}
  #timer: NodeJS.Timeout | undefined

  constructor(
    private readonly callback: InboundErrorCallback | undefined,
    private readonly intervalMs: number,
    private readonly burst: number,
  ) {}

  /** Reports `error` now, or counts it for the interval's summary. */
  report(error: P2PError, remoteAddress: string): void {
    if (this.callback === undefined) return
    this.#timer ??= setTimeout(this.#endInterval, this.intervalMs).unref()
    if (this.#reported < this.burst) {
      this.#reported++
      this.#call(error, remoteAddress)
      return
    }
    this.#suppressed++
    this.#codes[error.code] = (this.#codes[error.code] ?? 0) + 1
  }

  /** Reports what is pending and stops the timer. */
  close(): void {
    clearTimeout(this.#timer)
    this.#endInterval()
  }

  readonly #endInterval = (): void => {
    this.#timer = undefined
    this.#reported = 0
    if (this.#suppressed === 0) return
    const summary = new SuppressedErrorsError(this.#suppressed, this.#codes, this.intervalMs)
    this.#suppressed = 0
    this.#codes = {}
    // The summary opens the next interval's count, so summaries alone never exceed one per interval.
    this.#timer = setTimeout(this.#endInterval, this.intervalMs).unref()
    this.#reported = 1
    this.#call(summary, '*')
  }

  #call(error: P2PError, remoteAddress: string): void {
    try {
      this.callback!(error, remoteAddress)
    } catch {
      // A logging callback must not take the listener down.
    }
  }
}
