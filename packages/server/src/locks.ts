/**
 * Serializes async work per key (a blob id, an owner) and pins ids that an
 * in-flight operation relies on, so a concurrent free never removes a blob
 * between its existence check and the commit that references it.
 */
export class KeyedLocks {
  readonly #tails = new Map<string, Promise<void>>()
  readonly #pins = new Map<string, number>()

  /** Runs `fn` when every earlier call for `key` has settled. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve()
    let release!: () => void
    const tail = new Promise<void>((resolve) => (release = resolve))
    const chained = previous.then(() => tail)
    this.#tails.set(key, chained)
    try {
      await previous
      return await fn()
    } finally {
      release()
      if (this.#tails.get(key) === chained) this.#tails.delete(key)
    }
  }

  /**
   * Runs `fn` holding the locks of every key of `keys`, taken one after the other in sorted order, so that two
   * callers holding several never wait on each other in a cycle.
   */
  runAll<T>(keys: Iterable<string>, fn: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(keys)].sort()
    const hold = (at: number): Promise<T> => (at === sorted.length ? fn() : this.run(sorted[at]!, () => hold(at + 1)))
    return hold(0)
  }

  /** Marks `key` as relied upon until {@link KeyedLocks.unpin}. */
  pin(key: string): void {
    this.#pins.set(key, (this.#pins.get(key) ?? 0) + 1)
  }

  /** Releases one {@link KeyedLocks.pin}. */
  unpin(key: string): void {
    const n = (this.#pins.get(key) ?? 0) - 1
    if (n <= 0) this.#pins.delete(key)
    else this.#pins.set(key, n)
  }

  /** Whether any in-flight operation pinned `key`. */
  pinned(key: string): boolean {
    return this.#pins.has(key)
  }
}

const HELD: unique symbol = Symbol('held key lock')

/**
 * Proof that the caller holds one key's lock, handed out by {@link KeyLocks.run} only. Functions that must
 * run under a key's lock take one; functions that may take it themselves take one optionally.
 */
export interface HeldKey {
  readonly key: string
  readonly [HELD]: true
}

/** One lock per object key: the writes, deletes and installs of one key run one at a time. */
export class KeyLocks {
  readonly #locks = new KeyedLocks()

  /** Runs `fn` holding `key`'s lock. */
  run<T>(key: string, fn: (held: HeldKey) => Promise<T>): Promise<T> {
    return this.#locks.run(key, () => fn({ key, [HELD]: true }))
  }

  /** Runs `fn` under `key`'s lock: with `held` when the caller holds it already (it must be that key's), else taking it. */
  with<T>(key: string, held: HeldKey | undefined, fn: (held: HeldKey) => Promise<T>): Promise<T> {
    if (held === undefined) return this.run(key, fn)
    if (held.key !== key) throw new Error(`holding the lock of another key than "${key}"`)
    return fn(held)
  }
}
