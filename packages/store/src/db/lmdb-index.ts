import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { open, type Database, type RootDatabase } from 'lmdb'
import { IndexError, InvalidArgumentError, StoreError } from '../errors.js'
import { abortedError, throwIfAborted } from '../internal/abort.js'
import type { AbortOptions, Index, IndexOptions, IndexTable, IndexTransaction, RangeOptions } from '../types.js'
import { assertKey, assertRangeOptions, BaseIndex } from './common.js'

const DEFAULT_MAX_TABLES = 64

function indexError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err
  return new IndexError(`index failed to ${what}`, { cause: err })
}

function keyBytes(key: string): Buffer {
  return Buffer.from(key, 'utf8')
}

class LmdbTable<V> implements IndexTable<V> {
  readonly name: string
  readonly db: Database<unknown, Buffer>
  readonly #assertOpen: () => void

  constructor(name: string, db: Database<unknown, Buffer>, assertOpen: () => void) {
    this.name = name
    this.db = db
    this.#assertOpen = assertOpen
  }

  /** Reads one value (inside a write transaction: as that transaction sees it). */
  read(key: string): V | undefined {
    try {
      return this.db.get(keyBytes(key)) as V | undefined
    } catch (err) {
      throw indexError(err, `read ${this.name}`)
    }
  }

  /** Writes inside the current write transaction. */
  write(key: string, value: unknown): void {
    try {
      this.db.putSync(keyBytes(key), value)
    } catch (err) {
      throw indexError(err, `write ${this.name}`)
    }
  }

  /** Deletes inside the current write transaction. */
  remove(key: string): void {
    try {
      this.db.removeSync(keyBytes(key))
    } catch (err) {
      throw indexError(err, `delete from ${this.name}`)
    }
  }

  get(key: string): V | undefined {
    assertKey(key)
    this.#assertOpen()
    return this.read(key)
  }

  has(key: string): boolean {
    return this.get(key) !== undefined
  }

  entries(options: RangeOptions = {}): Iterable<[key: string, value: V]> {
    assertRangeOptions(options)
    this.#assertOpen()
    return this.#entries(options)
  }

  *#entries(options: RangeOptions): Generator<[key: string, value: V]> {
    const limit = options.limit ?? Infinity
    if (limit === 0) return
    const prefix = keyBytes(options.prefix ?? '')
    let start = prefix
    if (options.after !== undefined) {
      // The smallest key strictly after `after` is `after` followed by a zero byte.
      const after = Buffer.concat([keyBytes(options.after), Buffer.of(0)])
      if (Buffer.compare(after, start) > 0) start = after
    }
    let count = 0
    let range
    try {
      range = this.db.getRange(start.byteLength === 0 ? {} : { start })
    } catch (err) {
      throw indexError(err, `list ${this.name}`)
    }
    for (const { key, value } of range) {
      if (key.byteLength < prefix.byteLength || prefix.compare(key, 0, prefix.byteLength) !== 0) return
      yield [key.toString('utf8'), value as V]
      if (++count >= limit) return
    }
  }
}

class LmdbIndex extends BaseIndex<LmdbTable<unknown>> {
  readonly #root: RootDatabase
  readonly #pending = new Set<Promise<unknown>>()

  constructor(root: RootDatabase) {
    super((name) => {
      let db: Database<unknown, Buffer>
      try {
        // `structuredClone` makes msgpack keep Maps, Sets, Dates and shared references, like the memory index.
        const tableOptions = { name, keyEncoding: 'binary', structuredClone: true } as const
        db = root.openDB<unknown, Buffer>(tableOptions)
        // The cached read transaction predates the new table: renew it, or reads fail.
        root.resetReadTxn()
      } catch (err) {
        throw indexError(err, `open table ${name} (is maxTables too small?)`)
      }
      return new LmdbTable(name, db, () => this.assertOpen())
    })
    this.#root = root
  }

  transaction<T>(fn: (tx: IndexTransaction) => T, options: AbortOptions = {}): Promise<T> {
    const run = this.#transaction(fn, options)
    this.#pending.add(run)
    void run.finally(() => this.#pending.delete(run)).catch(() => undefined)
    return run
  }

  async #transaction<T>(fn: (tx: IndexTransaction) => T, options: AbortOptions): Promise<T> {
    const { signal } = options
    throwIfAborted(signal)
    this.assertOpen()
    let outcome: { result: T } | undefined
    let thrown: { error: unknown } | undefined
    try {
      // A child transaction is rolled back when its callback throws (lmdb's batch would commit half).
      await this.#root.childTransaction(() => {
        if (signal?.aborted === true) throw abortedError(signal)
        try {
          // Writes go straight into the child transaction (encoded, so detached from the caller)
          // and reads inside it see them; a throw rolls all of them back.
          outcome = {
            result: this.run(fn, {
              read: (table, key) => this.own(table).read(key),
              write: (table, key, value) => this.own(table).write(key, value),
              remove: (table, key) => this.own(table).remove(key),
            }),
          }
        } catch (error) {
          thrown = { error }
          throw error
        }
      })
      // Committed is not yet durable: wait for the flush to disk.
      await this.#root.flushed
    } catch (err) {
      // A failed commit carries lmdb's reason as a second, rejected promise: observe it, or it ends the process.
      void (err as { commitError?: Promise<unknown> } | undefined)?.commitError?.catch(() => undefined)
      if (thrown !== undefined) throw thrown.error
      throw indexError(err, 'commit a transaction')
    }
    if (outcome === undefined) throw new IndexError('the transaction did not run')
    return outcome.result
  }

  async close(): Promise<void> {
    if (!this.markClosed()) return
    await Promise.allSettled([...this.#pending])
    try {
      await this.#root.close()
    } catch (err) {
      throw indexError(err, 'close')
    }
  }
}

/**
 * Opens (creating when missing) the durable ordered index: an LMDB environment in the
 * directory `path`, with the four standard tables. Crash-safe: a transaction is durable when
 * its promise resolves, and a crash never leaves half of one.
 *
 * @example
 * ```ts
 * const index = await openIndex({ path: '/var/lib/dcas/index' })
 * await index.transaction((tx) => tx.add(index.refcounts, blobId, 1))
 * ```
 */
export async function openIndex(options: IndexOptions): Promise<Index> {
  throwIfAborted(options.signal)
  if (typeof options.path !== 'string' || options.path === '') throw new InvalidArgumentError('path must be a non-empty path')
  const maxTables = options.maxTables ?? DEFAULT_MAX_TABLES
  if (!Number.isSafeInteger(maxTables) || maxTables < 4) throw new InvalidArgumentError('maxTables must be an integer of at least 4')
  try {
    await mkdir(options.path, { recursive: true, mode: 0o700 })
    // When a commit fails (a full disk), lmdb's event-turn batching leaves a rejected commit promise
    // that nobody holds (an unhandled rejection ends the process), and overlapping sync leaves a
    // flush promise that never settles (close() would wait for it forever). Both are off: each
    // commit is synced before its promise resolves, as durable as before.
    const root = open({ path: join(options.path, 'data.mdb'), maxDbs: maxTables, eventTurnBatching: false, overlappingSync: false })
    return new LmdbIndex(root)
  } catch (err) {
    throw indexError(err, `open ${options.path}`)
  }
}
