// The blobs one request brings from an owner: each checked against its cipherId as it is written into one
// batch of the owner's replica store, counted against the owner's byte quota from its first byte, and made
// durable and visible together by one commit; or dropped, and no longer counted, by an abort.
import type { BlobBatch } from '@dcas/store'
import { missingIn, type Served } from './holder-state.js'

/**
 * Blobs a request may have written and not committed: at this many they are committed as a group (what the
 * holder keeps per uncommitted blob, and the locks a commit takes, stay bounded however many a ref has).
 */
export const MAX_UNCOMMITTED_BLOBS = 256

/** One request's blobs on their way into the owner's replica store (`blob.put` brings one, `ref.store` many). */
export class IncomingBlobs {
  readonly #served: Served
  #batch: BlobBatch | undefined
  /** Blobs written into the batch and not committed yet: cipherId → size, counted in the owner's usage. */
  readonly #staged = new Map<string, number>()

  constructor(served: Served) {
    this.#served = served
  }

  /**
   * Takes one blob: written into the batch (neither durable nor visible before {@link IncomingBlobs.commit},
   * which it runs itself once {@link MAX_UNCOMMITTED_BLOBS} wait for one), or its bytes read and dropped when it
   * is here or in the batch already. `false` when the bytes do not hash to `cipherId`: nothing of them is kept.
   */
  async add(cipherId: string, bytes: AsyncIterable<Uint8Array>, size: number): Promise<boolean> {
    const { ctx, owner } = this.#served
    const store = await ctx.space.store(owner)
    if (this.#staged.has(cipherId)) {
      for await (const _ of bytes) void _
      return true
    }
    if (await store.has(cipherId)) {
      for await (const _ of bytes) void _
      await this.#brought([cipherId])
      return true
    }
    this.#batch ??= store.batch()
    // Counted before its bytes come, so that a quota sees what is still being sent.
    ctx.space.bytes(owner, size)
    try {
      await this.#batch.putExpected(cipherId, bytes)
    } catch (err) {
      ctx.space.bytes(owner, -size)
      if ((err as { code?: string }).code !== 'ERR_INTEGRITY') throw err
      return false
    }
    this.#staged.set(cipherId, size)
    if (this.#staged.size >= MAX_UNCOMMITTED_BLOBS) await this.commit()
    return true
  }

  /**
   * Makes the blobs taken since the last commit durable, then visible, together (their files and directories
   * fsynced as a group). A blob that was here already stays counted once. When the commit fails, what it
   * placed stays counted (a connection sweep frees it unless a ref takes it up), the rest is dropped.
   */
  async commit(): Promise<void> {
    const batch = this.#batch
    if (batch === undefined || this.#staged.size === 0) return
    const { ctx, owner } = this.#served
    const staged = [...this.#staged]
    const ids = staged.map(([id]) => id)
    let failure: { err: unknown } | undefined
    // Under the blobs' locks: no free and no other commit changes what is here between the look and the commit.
    const placed = await ctx.locks.runAll(
      ids.map((id) => `${owner}/${id}`),
      async () => {
        const store = await ctx.space.store(owner)
        const absent = new Set(await missingIn(store, ids))
        this.#staged.clear()
        try {
          await batch.commit()
        } catch (err) {
          // The batch aborted itself: a later blob starts another.
          failure = { err }
          this.#batch = undefined
        }
        // After a failed commit, what it placed is here; if even that cannot be told, count none of it.
        const missing = failure === undefined ? new Set<string>() : new Set(await missingIn(store, ids).catch(() => ids))
        for (const [id, size] of staged) {
          // Counted already when it was here before; never to be counted when it was not placed.
          if (!absent.has(id) || missing.has(id)) ctx.space.bytes(owner, -size)
        }
        return ids.filter((id) => !missing.has(id))
      },
    )
    await this.#brought(placed)
    if (failure !== undefined) throw failure.err
  }

  /** Drops the blobs taken and not committed (never throws). */
  async abort(): Promise<void> {
    const { ctx, owner } = this.#served
    const batch = this.#batch
    this.#batch = undefined
    await batch?.abort()
    for (const size of this.#staged.values()) ctx.space.bytes(owner, -size)
    this.#staged.clear()
  }

  /** Blobs this request brought that are here now: swept with the connection unless a ref takes them up, and no longer damaged. */
  async #brought(ids: string[]): Promise<void> {
    const { ctx, owner, received } = this.#served
    for (const id of ids) received.add(id)
    const marked = ids.filter((id) => ctx.tables.damaged.has(`${owner}/${id}`))
    if (marked.length === 0) return
    await ctx.index.transaction((tx) => {
      for (const id of marked) tx.delete(ctx.tables.damaged, `${owner}/${id}`)
    })
  }
}
