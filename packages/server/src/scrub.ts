// Scrub: every local object read back whole through the verified read path, which heals lost or
// damaged chunks from peers; the heals of this scrub's own reads are counted.
import { codeOf, messageOf } from './errors.js'
import type { Logger } from './logger.js'
import type { HealObserver } from './retriever.js'
import type { ListEntry, ListOptions, ScrubResult } from './types.js'

export interface ScrubSource {
  list(options: ListOptions): Promise<ListEntry[]>
  /** Reads a whole object, verified; `observer` is told of each chunk healed. */
  read(key: string, signal: AbortSignal | undefined, observer: HealObserver): AsyncIterable<Uint8Array>
  /** Whether the server still runs. */
  open(): boolean
}

const PAGE = 100

/** Reads every local object back; see {@link ScrubResult}. */
export async function scrub(source: ScrubSource, signal: AbortSignal | undefined, log: Logger): Promise<ScrubResult> {
  const result: ScrubResult = { objects: 0, bytes: 0, healed: 0, failed: [] }
  const onHealed: HealObserver = () => void result.healed++
  let after: string | undefined
  for (;;) {
    const entries = await source.list({ limit: PAGE, ...(after === undefined ? {} : { after }) })
    for (const { key } of entries) {
      try {
        for await (const piece of source.read(key, signal, onHealed)) result.bytes += piece.length
        result.objects++
      } catch (err) {
        if (signal?.aborted === true || !source.open()) throw err
        const code = codeOf(err)
        if (code === 'ERR_NOT_FOUND') continue // deleted while the scrub ran
        result.failed.push({ key, ...(code === undefined ? {} : { code }), message: messageOf(err) })
      }
    }
    if (entries.length < PAGE) break
    after = entries.at(-1)!.key
  }
  log.info({ objects: result.objects, bytes: result.bytes, healed: result.healed, failed: result.failed.length }, 'scrubbed')
  return result
}
