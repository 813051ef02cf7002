import { ClosedError, InvalidArgumentError, InvalidKeyError, MAX_KEY_BYTES } from '../errors.js'
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

/** The four tables every index has, by property name. */
export const STANDARD_TABLES = ['refs', 'refcounts', 'peerState', 'tombstones'] as const

const TABLE_NAME = /^[a-z0-9_-]{1,64}$/

/** Throws `ERR_INVALID_ARGUMENT` unless `name` is `[a-z0-9_-]{1,64}` (or a standard table). */
export function assertTableName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !(TABLE_NAME.test(name) || (STANDARD_TABLES as readonly string[]).includes(name))) {
    throw new InvalidArgumentError(`invalid table name ${JSON.stringify(name)}: expected [a-z0-9_-]{1,64}`)
  }
}

/** Throws `ERR_INVALID_KEY` unless `key` is a well-formed, non-empty string of at most {@link MAX_KEY_BYTES} UTF-8 bytes. */
export function assertKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key === '') throw new InvalidKeyError('an index key must be a non-empty string')
  if (!key.isWellFormed()) throw new InvalidKeyError('an index key must be well-formed UTF-16 (no lone surrogates)')
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new InvalidKeyError(`an index key may be at most ${MAX_KEY_BYTES} UTF-8 bytes`)
  }
}

/** Validates the options of `entries`; a prefix or cursor may be empty but must be well-formed. */
export function assertRangeOptions(options: RangeOptions): void {
  for (const name of ['prefix', 'after'] as const) {
    const value = options[name]
    if (value !== undefined && (typeof value !== 'string' || !value.isWellFormed())) {
      throw new InvalidKeyError(`${name} must be a well-formed string`)
    }
  }
  const { limit } = options
  if (limit !== undefined && (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 0)) {
    throw new InvalidArgumentError(`limit must be a non-negative integer, got ${String(limit)}`)
  }
}

/**
 * Throws `ERR_INVALID_ARGUMENT` unless `value` can be stored: not `undefined`, and no function
 * or symbol anywhere inside (both implementations would otherwise lose them differently).
 */
export function assertStorable(value: unknown): void {
  if (value === undefined) throw new InvalidArgumentError('undefined cannot be stored: delete the key instead')
  const seen = new Set<object>()
  const visit = (item: unknown): void => {
    if (typeof item === 'function' || typeof item === 'symbol') {
      throw new InvalidArgumentError(`a ${typeof item} cannot be stored: values must be structured-clonable`)
    }
    if (typeof item !== 'object' || item === null || ArrayBuffer.isView(item) || seen.has(item)) return
    seen.add(item)
    if (item instanceof Map) {
      for (const [k, v] of item) {
        visit(k)
        visit(v)
      }
    } else if (item instanceof Set) {
      for (const v of item) visit(v)
    } else {
      for (const v of Object.values(item)) visit(v)
    }
  }
  visit(value)
}

/** Where a transaction's reads and writes go: each implementation supplies one. */
export interface TransactionBackend {
  /** The value as the transaction sees it, as a copy the caller may change. */
  read(table: IndexTable<unknown>, key: string): unknown
  /** Stores a copy of a checked value. */
  write(table: IndexTable<unknown>, key: string, value: unknown): void
  remove(table: IndexTable<unknown>, key: string): void
}

/** The checks and counter logic every index shares; storage is the backend's. */
export class CheckedTransaction implements IndexTransaction {
  readonly #backend: TransactionBackend
  readonly #owns: (table: IndexTable<unknown>) => boolean

  constructor(backend: TransactionBackend, owns: (table: IndexTable<unknown>) => boolean) {
    this.#backend = backend
    this.#owns = owns
  }

  #check(table: IndexTable<unknown>, key: string): void {
    assertKey(key)
    if (!this.#owns(table)) throw new InvalidArgumentError(`table ${table.name} does not belong to this index`)
  }

  get<V>(table: IndexTable<V>, key: string): V | undefined {
    this.#check(table, key)
    return this.#backend.read(table, key) as V | undefined
  }

  put<V>(table: IndexTable<V>, key: string, value: V): void {
    this.#check(table, key)
    assertStorable(value)
    this.#backend.write(table, key, value)
  }

  delete<V>(table: IndexTable<V>, key: string): void {
    this.#check(table, key)
    this.#backend.remove(table, key)
  }

  add(table: IndexTable<number>, key: string, delta: number): number {
    if (typeof delta !== 'number' || !Number.isSafeInteger(delta)) {
      throw new InvalidArgumentError(`delta must be an integer, got ${String(delta)}`)
    }
    const current = this.get(table, key) as unknown
    if (current !== undefined && (typeof current !== 'number' || !Number.isSafeInteger(current))) {
      throw new InvalidArgumentError(`${table.name}/${key} does not hold an integer counter`)
    }
    const next = (current ?? 0) + delta
    // A count below zero means a reference was dropped twice: refuse, so no blob is freed early.
    if (next < 0) throw new InvalidArgumentError(`${table.name}/${key} would drop below zero (${current ?? 0} + ${delta})`)
    if (next === 0) this.delete(table, key)
    else this.put(table, key, next)
    return next
  }
}

/** Runs a transaction's function; a function that returns a promise is refused (it must be synchronous). */
export function runSynchronously<T>(fn: (tx: IndexTransaction) => T, tx: IndexTransaction): T {
  const result = fn(tx)
  if (typeof (result as { then?: unknown } | null)?.then === 'function') {
    ;(result as Promise<unknown>).then(undefined, () => undefined)
    throw new InvalidArgumentError('a transaction function must be synchronous: it returned a promise, nothing was written')
  }
  return result
}

/** Compares two strings by their UTF-8 bytes (code point order), without encoding them. */
export function compareUtf8(a: string, b: string): number {
  const length = Math.min(a.length, b.length)
  for (let i = 0; i < length; i++) {
    let x = a.charCodeAt(i)
    let y = b.charCodeAt(i)
    if (x === y) continue
    // UTF-16 puts surrogates (astral code points) before U+E000..U+FFFF; UTF-8 puts them after.
    x += x >= 0xd800 && x <= 0xdfff ? 0x2000 : x >= 0xe000 ? -0x800 : 0
    y += y >= 0xd800 && y <= 0xdfff ? 0x2000 : y >= 0xe000 ? -0x800 : 0
    return x - y
  }
  return a.length - b.length
}

/**
 * What both indexes share: the standard tables, opening tables by name, the closed and
 * in-transaction states, and running a transaction's function over a backend.
 */
export abstract class BaseIndex<Table extends IndexTable<unknown>> implements Index {
  readonly refs: IndexTable<RefRecord>
  readonly refcounts: IndexTable<number>
  readonly peerState: IndexTable<PeerStateRecord>
  readonly tombstones: IndexTable<TombstoneRecord>
  readonly #tables = new Map<string, Table>()
  readonly #createTable: (name: string) => Table
  #closed = false
  #inTransaction = false

  constructor(createTable: (name: string) => Table) {
    this.#createTable = createTable
    this.refs = this.table('refs')
    this.refcounts = this.table('refcounts')
    this.peerState = this.table('peerState')
    this.tombstones = this.table('tombstones')
  }

  table<V>(name: string): IndexTable<V> {
    assertTableName(name)
    this.assertOpen()
    let table = this.#tables.get(name)
    if (table === undefined) {
      // A table created inside a transaction that then rolls back would leave a dead handle.
      if (this.#inTransaction) throw new InvalidArgumentError(`open table ${name} before the transaction, not inside it`)
      table = this.#createTable(name)
      this.#tables.set(name, table)
    }
    return table as unknown as IndexTable<V>
  }

  /** This index's own table behind `table`; a table of another index is refused. */
  protected own(table: IndexTable<unknown>): Table {
    const own = this.#tables.get(table.name)
    if (own === undefined || own !== table) throw new InvalidArgumentError(`table ${table.name} does not belong to this index`)
    return own
  }

  /** Runs the (synchronous) transaction function over `backend`. */
  protected run<T>(fn: (tx: IndexTransaction) => T, backend: TransactionBackend): T {
    this.#inTransaction = true
    try {
      return runSynchronously(fn, new CheckedTransaction(backend, (table) => this.#tables.get(table.name) === table))
    } finally {
      this.#inTransaction = false
    }
  }

  protected markClosed(): boolean {
    const wasOpen = !this.#closed
    this.#closed = true
    return wasOpen
  }

  protected assertOpen(): void {
    if (this.#closed) throw new ClosedError('the index is closed')
  }

  abstract transaction<T>(fn: (tx: IndexTransaction) => T, options?: AbortOptions): Promise<T>
  abstract close(): Promise<void>
}
