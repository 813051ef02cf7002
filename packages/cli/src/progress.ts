// Progress bars for `dcas put` and `dcas get` (cli-progress): bytes, rate and ETA, on a
// terminal only, so pipes and logs stay clean.
import { SingleBar } from 'cli-progress'
import { formatBytes } from './format.js'

/** Objects smaller than this get no bar: they are done before one would draw. */
export const PROGRESS_THRESHOLD = 1024 * 1024

/** A progress display: `update` with the bytes done so far, `stop` when finished or failed. */
export interface Progress {
  update(done: number): void
  stop(): void
}

/** A progress display that shows nothing. */
export const noProgress: Progress = { update() {}, stop() {} }

/**
 * A progress bar on `stream` when it is a terminal and the transfer is large (or of unknown
 * size); otherwise nothing at all.
 */
export function createProgress(stream: NodeJS.WritableStream & { isTTY?: boolean }, label: string, total: number | undefined): Progress {
  if (stream.isTTY !== true || (total !== undefined && total < PROGRESS_THRESHOLD)) return noProgress
  const started = Date.now()
  const known = total !== undefined
  const bar = new SingleBar({
    stream,
    format: known ? '{label} [{bar}] {percentage}% | {done}/{size} | {rate} | ETA {eta_formatted}' : '{label} {done} | {rate}',
    barCompleteChar: '#',
    barIncompleteChar: '-',
    hideCursor: null,
    clearOnComplete: false,
    etaBuffer: 50,
    fps: 10,
  })
  const payload = (done: number): Record<string, string> => {
    const seconds = (Date.now() - started) / 1000
    return { label, done: formatBytes(done), size: known ? formatBytes(total) : '?', rate: `${formatBytes(seconds > 0 ? done / seconds : 0)}/s` }
  }
  bar.start(known ? Math.max(total, 1) : 1, 0, payload(0))
  let last = 0
  return {
    update(done) {
      last = done
      bar.update(known ? done : 0, payload(done))
    },
    stop() {
      bar.update(known ? last : 0, payload(last))
      bar.stop()
    },
  }
}
