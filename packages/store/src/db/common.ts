import { InvalidArgumentError, InvalidKeyError, MAX_KEY_BYTES } from '../errors.js'
import type { IndexTable, IndexTransaction, RangeOptions } from '../types.js'

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

/** A deep copy of a value to store: checks it is storable and detaches it from the caller. */
export function storable(value: unknown): unknown {
  if (value === undefined) throw new InvalidArgumentError('undefined cannot be stored: delete the key instead')
  try {
    return structuredClone(value)
  } catch (err) {
    throw new InvalidArgumentError('the value is not structured-clonable', { cause: err })
  }
}

/** What a transaction plans for one key: a new value, or `undefined` for a delete. */
type Write = { value: unknown } | undefined

/**
 * The writes of one transaction, staged in memory until `fn` returns: a throwing `fn` leaves
 * nothing behind in any implementation. Reads see staged writes first.
 */
export class StagedTransaction implements IndexTransaction {
  readonly writes = new Map<IndexTable<unknown>, Map<string, Write>>()
  readonly #read: (table: IndexTable<unknown>, key: string) => unknown
  readonly #owns: (table: IndexTable<unknown>) => boolean

  constructor(read: (table: IndexTable<unknown>, key: string) => unknown, owns: (table: IndexTable<unknown>) => boolean) {
    this.#read = read
    this.#owns = owns
  }

  #staged(table: IndexTable<unknown>): Map<string, Write> {
    if (!this.#owns(table)) throw new InvalidArgumentError(`table ${table.name} does not belong to this index`)
    let staged = this.writes.get(table)
    if (staged === undefined) this.writes.set(table, (staged = new Map<string, Write>()))
    return staged
  }

  get<V>(table: IndexTable<V>, key: string): V | undefined {
    assertKey(key)
    const staged = this.#staged(table)
    if (staged.has(key)) {
      const write = staged.get(key)
      return write === undefined ? undefined : (structuredClone(write.value) as V)
    }
    return this.#read(table, key) as V | undefined
  }

  put<V>(table: IndexTable<V>, key: string, value: V): void {
    assertKey(key)
    this.#staged(table).set(key, { value: storable(value) })
  }

  delete<V>(table: IndexTable<V>, key: string): void {
    assertKey(key)
    this.#staged(table).set(key, undefined)
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
