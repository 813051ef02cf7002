import { InvalidArgumentError } from '../errors.js'
import { throwIfAborted } from '../internal/abort.js'
import type { AbortOptions, Index, IndexTable, IndexTransaction, RangeOptions } from '../types.js'
import { assertKey, assertRangeOptions, BaseIndex, compareUtf8 } from './common.js'

class MemoryTable<V> implements IndexTable<V> {
  readonly name: string
  /** Keys in UTF-8 byte order, beside their values. */
  readonly #keys: string[] = []
  readonly #values = new Map<string, unknown>()
  readonly #assertOpen: () => void

  constructor(name: string, assertOpen: () => void) {
    this.name = name
    this.#assertOpen = assertOpen
  }

  /** Index of the first key not below `key`. */
  #lowerBound(key: string): number {
    let low = 0
    let high = this.#keys.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (compareUtf8(this.#keys[middle] ?? '', key) < 0) low = middle + 1
      else high = middle
    }
    return low
  }

  read(key: string): unknown {
    const value = this.#values.get(key)
    return value === undefined ? undefined : structuredClone(value)
  }

  write(key: string, value: unknown): void {
    if (!this.#values.has(key)) this.#keys.splice(this.#lowerBound(key), 0, key)
    this.#values.set(key, value)
  }

  remove(key: string): void {
    if (!this.#values.delete(key)) return
    this.#keys.splice(this.#lowerBound(key), 1)
  }

  get(key: string): V | undefined {
    assertKey(key)
    this.#assertOpen()
    return this.read(key) as V | undefined
  }

  has(key: string): boolean {
    assertKey(key)
    this.#assertOpen()
    return this.#values.has(key)
  }

  entries(options: RangeOptions = {}): Iterable<[key: string, value: V]> {
    assertRangeOptions(options)
    this.#assertOpen()
    return this.#entries(options)
  }

  *#entries(options: RangeOptions): Generator<[key: string, value: V]> {
    const prefix = options.prefix ?? ''
    const limit = options.limit ?? Infinity
    let cursor = options.after !== undefined && compareUtf8(options.after, prefix) >= 0 ? options.after : undefined
    let position = this.#lowerBound(cursor ?? prefix)
    for (let count = 0; count < limit; count++) {
      // Re-find the position from the last key: writes between two steps shift the array.
      if (cursor !== undefined) {
        position = this.#lowerBound(cursor)
        if (this.#keys[position] === cursor) position++
      }
      const key = this.#keys[position]
      if (key === undefined || !key.startsWith(prefix)) return
      yield [key, this.read(key) as V]
      cursor = key
    }
  }
}

class InMemoryIndex extends BaseIndex<MemoryTable<unknown>> {
  constructor() {
    super((name) => new MemoryTable(name, () => this.assertOpen()))
  }

  transaction<T>(fn: (tx: IndexTransaction) => T, options: AbortOptions = {}): Promise<T> {
    // Runs at once; errors become rejections, as in the LMDB index.
    return new Promise<T>((resolve) => resolve(this.#transaction(fn, options)))
  }

  #transaction<T>(fn: (tx: IndexTransaction) => T, options: AbortOptions): T {
    throwIfAborted(options.signal)
    this.assertOpen()
    // Writes are staged until `fn` returns: a throwing `fn` leaves nothing behind.
    type Write = { value: unknown } | undefined
    const staged = new Map<MemoryTable<unknown>, Map<string, Write>>()
    const stagedIn = (table: IndexTable<unknown>) => {
      const own = this.own(table)
      let writes = staged.get(own)
      if (writes === undefined) staged.set(own, (writes = new Map<string, Write>()))
      return writes
    }
    const result = this.run(fn, {
      read: (table, key) => {
        const writes = stagedIn(table)
        if (!writes.has(key)) return this.own(table).read(key)
        const write = writes.get(key)
        return write === undefined ? undefined : structuredClone(write.value)
      },
      write: (table, key, value) => {
        let copy: unknown
        try {
          copy = structuredClone(value)
        } catch (err) {
          throw new InvalidArgumentError('the value is not structured-clonable', { cause: err })
        }
        stagedIn(table).set(key, { value: copy })
      },
      remove: (table, key) => void stagedIn(table).set(key, undefined),
    })
    // Applying cannot fail half-way: every key and value was checked when it was staged.
    for (const [table, writes] of staged) {
      for (const [key, write] of writes) {
        if (write === undefined) table.remove(key)
        else table.write(key, write.value)
      }
    }
    return result
  }

  close(): Promise<void> {
    this.markClosed()
    return Promise.resolve()
  }
}

/**
 * Creates an in-memory {@link Index} with the same interface and semantics as `openIndex`
 * (UTF-8 key order, atomic transactions, typed errors), for tests and ephemeral nodes.
 *
 * @example
 * ```ts
 * const index = createMemoryIndex()
 * await index.transaction((tx) => tx.put(index.tombstones, 'photos/cat.jpg', { version: 3, deletedAt: Date.now() }))
 * ```
 */
export function createMemoryIndex(): Index {
  return new InMemoryIndex()
}
