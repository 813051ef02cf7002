// The blobs one request brings from an owner: each checked against its cipherId as it is written into the
// owner's replica store, counted against the owner's byte quota from its first byte, and made durable and
// visible a group at a time as they come (group commit: the blobs that came while earlier groups were being
// made durable form the next), so that little is left to make durable when the request ends; or dropped, and
// no longer counted, by an abort.
import type { BlobBatch } from '@dcas/store'
import { messageOf } from './errors.js'
import { clearDamaged, freeUnreferenced, missingIn, type Served } from './holder-state.js'

/**
 * Blobs a request may have written and not made visible yet (staged and committing): at this many a
 * request waits for a commit before it writes another (what the holder keeps per uncommitted blob, and the
 * locks a commit takes, stay bounded however many a ref has).
 */
export const MAX_UNCOMMITTED_BLOBS = 256

/** Groups of one request being made durable at once: the second starts while the first waits on the disk. */
const COMMITS_AT_ONCE = 2

/** One group: a batch of blobs written, made durable and visible together. */
interface Group {
  batch: BlobBatch
  /** cipherId → size, counted in the owner's usage. */
  staged: Map<string, number>
}

/** One request's blobs on their way into the owner's replica store (`blob.put` brings one, `ref.store` many). */
export class IncomingBlobs {
  readonly #served: Served
  /** The group taking blobs; it is committed when fewer than {@link COMMITS_AT_ONCE} are. */
  #open: Group | undefined
  /** Groups being committed, by the promise that settles when each is. */
  readonly #committing = new Map<Promise<void>, Group>()
  /** A blob is being written into the open group: it is not committed until that ends. */
  #putting = false
  /** Blobs this request's commits placed that were not here before: freed by an abort unless kept. */
  readonly #placed = new Set<string>()
  /** The first commit that failed: the request fails with it. */
  #failure: { err: unknown } | undefined

  constructor(served: Served) {
    this.#served = served
  }

  /**
   * Takes one blob: written into the open group (neither durable nor visible before its group is committed,
   * which starts at once unless two groups are committing already), or its bytes read and dropped when it is
   * here or on its way already. `false` when the bytes do not hash to `cipherId`: nothing of them is kept.
   * Throws the failure of an earlier group's commit.
   */
  async add(cipherId: string, bytes: AsyncIterable<Uint8Array>, size: number): Promise<boolean> {
    const { ctx, owner } = this.#served
    this.#throwIfFailed()
    const store = await ctx.space.store(owner)
    if (this.#taken(cipherId)) {
      for await (const _ of bytes) void _
      return true
    }
    if (await store.has(cipherId)) {
      for await (const _ of bytes) void _
      await this.#brought([cipherId])
      return true
    }
    while (this.#uncommitted() >= MAX_UNCOMMITTED_BLOBS) await this.#settleOne()
    const group = (this.#open ??= { batch: store.batch(), staged: new Map() })
    // Counted before its bytes come, so that a quota sees what is still being sent.
    ctx.space.bytes(owner, size)
    this.#putting = true
    try {
      await group.batch.putExpected(cipherId, bytes)
    } catch (err) {
      ctx.space.bytes(owner, -size)
      if ((err as { code?: string }).code !== 'ERR_INTEGRITY') throw err
      return false
    } finally {
      this.#putting = false
    }
    group.staged.set(cipherId, size)
    this.#kick()
    return true
  }

  /**
   * Makes every blob taken so far durable, then visible (its group's files and directories fsynced
   * together): waits for the groups being committed and commits the open one. A blob that was here already
   * stays counted once. When a commit fails, what it placed stays counted until {@link IncomingBlobs.abort}
   * frees it, the rest is dropped, and this throws its error.
   */
  async commit(): Promise<void> {
    while (this.#open !== undefined || this.#committing.size > 0) await this.#settleOne()
    this.#throwIfFailed()
  }

  /**
   * The request got as far as its ref: what it placed stays (a ref takes it up, or the connection's sweep frees
   * it), and a later {@link IncomingBlobs.abort} only drops what was not committed.
   */
  keep(): void {
    this.#placed.clear()
  }

  /**
   * Ends the request: drops the blobs taken and not committed, waits for the groups being committed, and frees
   * what its commits placed unless {@link IncomingBlobs.keep} kept it and no ref counts it (never throws). A
   * request that fails or is broken off before its ref keeps nothing.
   */
  async abort(): Promise<void> {
    const { ctx, owner, received } = this.#served
    const group = this.#open
    this.#open = undefined
    await group?.batch.abort()
    for (const size of group?.staged.values() ?? []) ctx.space.bytes(owner, -size)
    // None starts after this: a commit that ends starts the next only from an open group.
    await Promise.all(this.#committing.keys())
    if (this.#placed.size === 0) return
    const placed = [...this.#placed]
    this.#placed.clear()
    for (const id of placed) received.delete(id)
    // As a sweep does: a ref that counts them, or is being recorded with them, keeps them.
    await freeUnreferenced(ctx, owner, placed).catch((err: unknown) => {
      // Left to the connection's sweep.
      for (const id of placed) received.add(id)
      ctx.log.warn({ owner, err: messageOf(err) }, 'freeing the blobs of a failed request failed')
    })
  }

  /** Starts the open group's commit if it may, and waits for one commit to end; throws a failed commit's error. */
  async #settleOne(): Promise<void> {
    this.#throwIfFailed()
    this.#kick()
    if (this.#committing.size > 0) await Promise.race(this.#committing.keys())
    else if (this.#open !== undefined) {
      // A group that took nothing (its one blob failed its check): nothing to commit.
      const empty = this.#open
      this.#open = undefined
      await empty.batch.abort()
    }
    this.#throwIfFailed()
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure.err
  }

  /** This request's groups not committed yet: the open one and those committing. */
  *#groups(): Generator<Group> {
    if (this.#open !== undefined) yield this.#open
    yield* this.#committing.values()
  }

  /** Whether `cipherId` is in a group of this request already. */
  #taken(cipherId: string): boolean {
    for (const group of this.#groups()) if (group.staged.has(cipherId)) return true
    return false
  }

  /** Blobs of this request written and not visible yet. */
  #uncommitted(): number {
    let n = 0
    for (const group of this.#groups()) n += group.staged.size
    return n
  }

  /** Starts committing the open group, unless it is empty, a blob is being written into it, or {@link COMMITS_AT_ONCE} groups are committing. */
  #kick(): void {
    const group = this.#open
    if (group === undefined || group.staged.size === 0 || this.#putting || this.#committing.size >= COMMITS_AT_ONCE) return
    this.#open = undefined
    const done: Promise<void> = this.#commitGroup(group)
      .catch((err: unknown) => {
        this.#failure ??= { err }
      })
      .finally(() => {
        this.#committing.delete(done)
        // The blobs that came meanwhile form the next group (an abort left none open).
        if (this.#failure === undefined) this.#kick()
      })
    this.#committing.set(done, group)
  }

  /** Makes one group durable, then visible; counts what it placed, uncounts what it did not. */
  async #commitGroup({ batch, staged }: Group): Promise<void> {
    const { ctx, owner } = this.#served
    const ids = [...staged.keys()]
    let failure: { err: unknown } | undefined
    // Under the blobs' locks: no free and no other commit changes what is here between the look and the commit.
    const placed = await ctx.locks.runAll(
      ids.map((id) => `${owner}/${id}`),
      async () => {
        const store = await ctx.space.store(owner)
        const absent = new Set(await missingIn(store, ids))
        try {
          await batch.commit()
        } catch (err) {
          // The batch aborted itself.
          failure = { err }
        }
        // After a failed commit, what it placed is here; if even that cannot be told, count none of it.
        const missing = failure === undefined ? new Set<string>() : new Set(await missingIn(store, ids).catch(() => ids))
        for (const [id, size] of staged) {
          // Counted already when it was here before; never to be counted when it was not placed.
          if (!absent.has(id) || missing.has(id)) ctx.space.bytes(owner, -size)
          else this.#placed.add(id)
        }
        return ids.filter((id) => !missing.has(id))
      },
    )
    await this.#brought(placed)
    if (failure !== undefined) throw failure.err
  }

  /** Blobs this request brought that are here now: swept with the connection unless a ref takes them up, and no longer damaged. */
  async #brought(ids: string[]): Promise<void> {
    const { ctx, owner, received } = this.#served
    for (const id of ids) received.add(id)
    await clearDamaged(ctx, owner, ids)
  }
}
