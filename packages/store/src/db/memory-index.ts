import { ClosedError, InvalidArgumentError } from '../errors.js'
import { throwIfAborted } from '../internal/abort.js'
import type {
  AbortOptions,
  Index,
  IndexTable,
  IndexTransaction,
  PeerStateRecord,
  RangeOptions,
  RefRecord,
  TombstoneRecord,
} from '../types.js'
import {
  assertKey,
  assertRangeOptions,
  assertTableName,
  CheckedTransaction,
  compareUtf8,
  runSynchronously,
  type TransactionBackend,
} from './common.js'

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

class InMemoryIndex implements Index {
  readonly refs: IndexTable<RefRecord>
  readonly refcounts: IndexTable<number>
  readonly peerState: IndexTable<PeerStateRecord>
  readonly tombstones: IndexTable<TombstoneRecord>
  readonly #tables = new Map<string, MemoryTable<unknown>>()
  #closed = false
  #inTransaction = false

  constructor() {
    this.refs = this.table('refs')
    this.refcounts = this.table('refcounts')
    this.peerState = this.table('peerState')
    this.tombstones = this.table('tombstones')
  }

  table<V>(name: string): IndexTable<V> {
    assertTableName(name)
    this.#assertOpen()
    let table = this.#tables.get(name)
    if (table === undefined) {
      // A table created inside a transaction that then rolls back would leave a dead handle.
      if (this.#inTransaction) throw new InvalidArgumentError(`open table ${name} before the transaction, not inside it`)
      table = new MemoryTable(name, () => this.#assertOpen())
      this.#tables.set(name, table)
    }
    return table as IndexTable<V>
  }

  #table(table: IndexTable<unknown>): MemoryTable<unknown> {
    const own = this.#tables.get(table.name)
    if (own !== table || own === undefined) throw new InvalidArgumentError(`table ${table.name} does not belong to this index`)
    return own
  }

  transaction<T>(fn: (tx: IndexTransaction) => T, options: AbortOptions = {}): Promise<T> {
    // Runs at once; errors become rejections, as in the LMDB index.
    return new Promise<T>((resolve) => resolve(this.#transaction(fn, options)))
  }

  #transaction<T>(fn: (tx: IndexTransaction) => T, options: AbortOptions): T {
    throwIfAborted(options.signal)
    this.#assertOpen()
    // Writes are staged until `fn` returns: a throwing `fn` leaves nothing behind.
    type Write = { value: unknown } | undefined
    const staged = new Map<MemoryTable<unknown>, Map<string, Write>>()
    const stagedIn = (table: IndexTable<unknown>) => {
      const own = this.#table(table)
      let writes = staged.get(own)
      if (writes === undefined) staged.set(own, (writes = new Map<string, Write>()))
      return writes
    }
    const backend: TransactionBackend = {
      read: (table, key) => {
        const writes = stagedIn(table)
        if (!writes.has(key)) return this.#table(table).read(key)
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
    }
    const tx = new CheckedTransaction(backend, (table) => this.#tables.get(table.name) === table)
    this.#inTransaction = true
    let result: T
    try {
      result = runSynchronously(fn, tx)
    } finally {
      this.#inTransaction = false
    }
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
    this.#closed = true
    return Promise.resolve()
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('the index is closed')
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
