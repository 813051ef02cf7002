// Fetching the owner's blobs back from its peers: peers asked in placement's order, each answer
// bounded in size, checked against its cipherId and then opened by the caller; a peer that
// failed is sent the good copy in the background.
import type { Connection } from '@dcas/p2p'
import type { Background } from './background.js'
import { getBlob, putBlob } from './client.js'
import type { Deadlines } from './deadlines.js'
import { AbortedError, ClosedError, messageOf, throwIfAborted, UnavailableError } from './errors.js'
import { sha256Hex } from './manifest.js'
import type { Placement } from './placement.js'

/** Fetches blobs from peers. */
export class Fetcher {
  readonly #placement: Placement
  readonly #deadlines: Deadlines
  readonly #background: Background

  constructor(placement: Placement, deadlines: Deadlines, background: Background) {
    this.#placement = placement
    this.#deadlines = deadlines
    this.#background = background
  }

  /**
   * Fetches blob `cipherId` of ref `refId` from its peers in turn, each answer at most `maxSize` bytes, then
   * opened by `open` (given the pieces the bytes arrived in). The bytes are checked against `cipherId` first,
   * unless `openVerifies`: `open` then checks everything they decrypt to against an id this node trusts (what a
   * read needs), and the bytes are hashed only to be sent on to peers whose copy failed. `spread` picks which of
   * the peers that hold it is asked first.
   */
  async fetch<T>(cipherId: string, maxSize: number, refId: string, open: (cipher: Uint8Array[]) => Promise<T>, signal: AbortSignal, options: { spread?: number; openVerifies?: boolean } = {}): Promise<{ value: T; from: string }> {
    const { spread = 0, openVerifies = false } = options
    const errors: string[] = []
    const bad: Connection[] = []
    for (const conn of await this.#placement.readOrder(refId, { spread, signal })) {
      throwIfAborted(signal)
      try {
        const cipher = await getBlob(conn, cipherId, maxSize, this.#deadlines.request(signal))
        const matches = (): boolean => sha256Hex(cipher) === cipherId
        if (!openVerifies && !matches()) throw new UnavailableError('the bytes it sent do not hash to the cipherId')
        const value = await open(cipher)
        // Sent on only as the blob they are: bytes that decrypt right under another id are served, not spread.
        if (bad.length > 0 && (!openVerifies || matches())) {
          for (const b of bad) this.#background.enqueue(b, { what: 'repairing a replica', run: async () => void (await putBlob(b, cipherId, () => cipher, this.#deadlines.background())) })
        }
        return { value, from: conn.remoteNodeId }
      } catch (err) {
        if (signal.aborted) throw this.#deadlines.shutdown.aborted ? new ClosedError() : new AbortedError(undefined, { cause: err })
        errors.push(`${conn.remoteNodeId.slice(0, 12)}: ${messageOf(err)}`)
        bad.push(conn)
      }
    }
    throw new UnavailableError(`no peer could supply ${cipherId}` + (errors.length === 0 ? ' (no peer is connected)' : ` (${errors.join('; ')})`))
  }
}
