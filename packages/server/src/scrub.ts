// Scrub: every local object read back whole through the verified read path, which heals lost or
// damaged chunks from peers; the heals of this scrub's own reads are counted.
import { codeOf, messageOf } from './errors.js'
import type { Logger } from './logger.js'
import type { AuditResult } from './audit.js'
import type { HealObserver } from './retriever.js'
import type { ListEntry, ListOptions, ScrubResult } from './types.js'

export interface ScrubSource {
  /** Challenges up to `sample` copies on peers (proof of storage). */
  audit(sample: number, signal: AbortSignal | undefined): Promise<AuditResult>
  list(options: ListOptions): Promise<ListEntry[]>
  /** Reads a whole object, verified; `observer` is told of each chunk healed. */
  read(key: string, signal: AbortSignal | undefined, observer: HealObserver): AsyncIterable<Uint8Array>
  /** Whether the server still runs. */
  open(): boolean
}

const PAGE = 100

/** The copies on peers a scrub challenges, unless told otherwise. */
export const DEFAULT_AUDIT_SAMPLE = 64

/** Reads every local object back, then audits a sample of the copies on peers; see {@link ScrubResult}. */
export async function scrub(source: ScrubSource, signal: AbortSignal | undefined, log: Logger, sample = DEFAULT_AUDIT_SAMPLE): Promise<ScrubResult> {
  const result: ScrubResult = { objects: 0, bytes: 0, healed: 0, failed: [], audited: 0, lostCopies: [] }
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
  if (sample > 0) {
    const audit = await source.audit(sample, signal)
    result.audited = audit.audited
    result.lostCopies = audit.lost
  }
  log.info({ objects: result.objects, bytes: result.bytes, healed: result.healed, failed: result.failed.length, audited: result.audited, lostCopies: result.lostCopies.length }, 'scrubbed')
  return result
}
