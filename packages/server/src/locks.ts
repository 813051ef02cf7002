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
