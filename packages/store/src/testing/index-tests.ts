import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Index, RefRecord } from '../types.js'

/** How {@link indexTests} makes, reopens and disposes of the index under test. */
export interface IndexTestOptions<I extends Index = Index> {
  /** Name shown in the test report (default `Index`). */
  name?: string
  /** Makes a fresh, empty index. */
  setup: () => Promise<I>
  /** Disposes of an index made by `setup` or `reopen` (it may already be closed). */
  teardown: (index: I) => Promise<void>
  /** Closes the index and opens it again on the same storage; the durability tests run only with it. */
  reopen?: (index: I) => Promise<I>
}

function ref(manifestId: string, version = 1): RefRecord {
  return { manifestId, size: 1000, sha256: 'f'.repeat(64), version, updatedAt: 1_700_000_000_000 }
}

/**
 * The compliance suite every {@link Index} passes, written with vitest's `describe`/`it`.
 *
 * @example
 * ```ts
 * indexTests({ setup: async () => createMemoryIndex(), teardown: (index) => index.close() })
 * ```
 */
export function indexTests<I extends Index>(options: IndexTestOptions<I>): void {
  describe(`${options.name ?? 'Index'} compliance`, () => {
    let index: I

    beforeEach(async () => {
      index = await options.setup()
    })

    afterEach(async () => {
      await options.teardown(index)
    })

    it('stores a ref in a transaction and reads it back', async () => {
      const record = { ...ref('a'.repeat(64)), meta: { type: 'image/png', tags: ['x'] } }
      await index.transaction((tx) => tx.put(index.refs, 'photos/cat.png', record))
      expect(index.refs.get('photos/cat.png')).toEqual(record)
      expect(index.refs.has('photos/cat.png')).toBe(true)
      expect(index.refs.get('photos/dog.png')).toBeUndefined()
      expect(index.refs.has('photos/dog.png')).toBe(false)
    })

    it('resolves a transaction to what its function returns', async () => {
      expect(await index.transaction(() => 42)).toBe(42)
      expect(await index.transaction((tx) => tx.add(index.refcounts, 'blob', 3))).toBe(3)
    })

    it('lets a transaction read its own writes and deletes', async () => {
      await index.transaction((tx) => tx.put(index.refs, 'old', ref('1'.repeat(64))))
      const seen = await index.transaction((tx) => {
        tx.put(index.refs, 'new', ref('2'.repeat(64)))
        tx.delete(index.refs, 'old')
        return { fresh: tx.get(index.refs, 'new')?.manifestId, gone: tx.get(index.refs, 'old') }
      })
      expect(seen).toEqual({ fresh: '2'.repeat(64), gone: undefined })
      expect(index.refs.has('old')).toBe(false)
    })

    it('writes nothing of a transaction whose function throws, and rejects with its error', async () => {
      await index.transaction((tx) => tx.add(index.refcounts, 'kept', 1))
      const failure = new Error('half-way')
      const run = index.transaction((tx) => {
        tx.put(index.refs, 'key', ref('3'.repeat(64)))
        tx.add(index.refcounts, 'kept', 1)
        tx.add(index.refcounts, 'new-blob', 1)
        throw failure
      })
      await expect(run).rejects.toBe(failure)
      expect(index.refs.has('key')).toBe(false)
      expect(index.refcounts.get('kept')).toBe(1)
      expect(index.refcounts.has('new-blob')).toBe(false)
    })

    it('refuses an asynchronous transaction function and writes nothing', async () => {
      const run = index.transaction(async (tx) => {
        tx.put(index.refs, 'async', ref('4'.repeat(64)))
        await Promise.resolve()
      })
      await expect(run).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      expect(index.refs.has('async')).toBe(false)
    })

    it('counts up and down, deleting a counter at zero', async () => {
      await index.transaction((tx) => {
        tx.add(index.refcounts, 'b', 2)
        tx.add(index.refcounts, 'b', 1)
      })
      expect(index.refcounts.get('b')).toBe(3)
      expect(await index.transaction((tx) => tx.add(index.refcounts, 'b', -3))).toBe(0)
      expect(index.refcounts.has('b')).toBe(false)
    })

    it('refuses to take a counter below zero, rolling back the whole transaction', async () => {
      const run = index.transaction((tx) => {
        tx.put(index.refs, 'k', ref('5'.repeat(64)))
        tx.add(index.refcounts, 'never-counted', -1)
      })
      await expect(run).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      expect(index.refs.has('k')).toBe(false)
      expect(index.refcounts.has('never-counted')).toBe(false)
    })

    it('serializes concurrent transactions: no increment is lost', async () => {
      await Promise.all(Array.from({ length: 50 }, () => index.transaction((tx) => tx.add(index.refcounts, 'hot', 1))))
      expect(index.refcounts.get('hot')).toBe(50)
    })

    it('lists entries in UTF-8 byte order', async () => {
      const keys = ['b', 'a', 'é', '\uffff', '😀', 'ab', 'a\u0000', 'Z']
      await index.transaction((tx) => {
        for (const key of keys) tx.put(index.tombstones, key, { version: 1, deletedAt: 0 })
      })
      const byBytes = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
      expect([...index.tombstones.entries()].map(([key]) => key)).toEqual(byBytes)
      expect(byBytes.indexOf('😀')).toBeGreaterThan(byBytes.indexOf('\uffff'))
    })

    it('lists by prefix in pages with a start-after cursor, each entry once', async () => {
      await index.transaction((tx) => {
        for (let i = 0; i < 250; i++) tx.put(index.refs, `user/${String(i).padStart(4, '0')}`, ref('6'.repeat(64), i))
        tx.put(index.refs, 'user', ref('7'.repeat(64)))
        tx.put(index.refs, 'users/0', ref('7'.repeat(64)))
        tx.put(index.refs, 'other/1', ref('7'.repeat(64)))
      })
      const seen: string[] = []
      let after: string | undefined
      for (;;) {
        const page = [...index.refs.entries({ prefix: 'user/', after, limit: 64 })]
        if (page.length === 0) break
        expect(page.length).toBeLessThanOrEqual(64)
        for (const [key, value] of page) {
          expect(value.version).toBe(Number(key.slice(5)))
          seen.push(key)
        }
        after = page.at(-1)?.[0]
      }
      expect(seen).toEqual(Array.from({ length: 250 }, (_, i) => `user/${String(i).padStart(4, '0')}`))
      expect([...index.refs.entries({ prefix: 'user/', limit: 0 })]).toEqual([])
      expect([...index.refs.entries({ prefix: 'nothing/' })]).toEqual([])
      expect([...index.refs.entries({ prefix: 'user', after: 'user' })].map(([k]) => k).slice(0, 1)).toEqual(['user/0000'])
      expect([...index.refs.entries({ after: 'user/0248' })].map(([k]) => k)).toEqual(['user/0249', 'users/0'])
    })

    it('keeps tables apart', async () => {
      const custom = index.table<string>('custom')
      await index.transaction((tx) => {
        tx.put(custom, 'same', 'custom value')
        tx.put(index.peerState, 'same', { state: 'held', updatedAt: 5 })
      })
      expect(custom.get('same')).toBe('custom value')
      expect(index.peerState.get('same')).toEqual({ state: 'held', updatedAt: 5 })
      expect(index.refs.has('same')).toBe(false)
      expect(index.table('custom')).toBe(custom)
      expect(custom.name).toBe('custom')
    })

    it('returns copies: changing a value read or written does not change the index', async () => {
      const record = ref('8'.repeat(64))
      await index.transaction((tx) => {
        tx.put(index.refs, 'copy', record)
        record.size = -1
      })
      const read = index.refs.get('copy')
      if (read !== undefined) read.size = -2
      expect(index.refs.get('copy')?.size).toBe(1000)
    })

    it('keeps structured values: nested objects, arrays, bytes, dates, maps', async () => {
      const table = index.table<unknown>('structured')
      const value = { list: [1, 'two', null, true], bytes: new Uint8Array([1, 2, 3]), when: new Date(1234), map: new Map([['k', 1]]) }
      await index.transaction((tx) => tx.put(table, 'v', value))
      const read = table.get('v') as typeof value
      expect(read.list).toEqual(value.list)
      expect(Array.from(read.bytes)).toEqual([1, 2, 3])
      expect(read.when.getTime()).toBe(1234)
      expect(read.map.get('k')).toBe(1)
    })

    it('rejects invalid keys with ERR_INVALID_KEY and bad values or names with ERR_INVALID_ARGUMENT', async () => {
      for (const key of ['', 'x'.repeat(1979), 'lone \ud800 surrogate']) {
        expect(() => index.refs.get(key)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_KEY' }))
        await expect(index.transaction((tx) => tx.put(index.refs, key, ref('9'.repeat(64))))).rejects.toMatchObject({
          code: 'ERR_INVALID_KEY',
        })
      }
      expect(() => index.refs.get('é'.repeat(989))).not.toThrow()
      const table = index.table('t')
      await expect(index.transaction((tx) => tx.put(table, 'k', undefined))).rejects.toMatchObject({
        code: 'ERR_INVALID_ARGUMENT',
      })
      await expect(index.transaction((tx) => tx.put(table, 'k', () => 1))).rejects.toMatchObject({
        code: 'ERR_INVALID_ARGUMENT',
      })
      for (const name of ['', 'Upper', 'with space', 'x'.repeat(65), '../etc']) {
        expect(() => index.table(name), name).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
      }
      expect(() => [...index.refs.entries({ limit: -1 })]).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
      expect(index.table('t').has('k')).toBe(false)
    })

    it('refuses to open a new table inside a transaction, and keeps working after', async () => {
      await expect(index.transaction((tx) => tx.put(index.table<number>('late'), 'k', 1))).rejects.toMatchObject({
        code: 'ERR_INVALID_ARGUMENT',
      })
      const late = index.table<number>('late')
      await index.transaction((tx) => tx.put(late, 'k', 1))
      expect(late.get('k')).toBe(1)
    })

    it('fails a transaction with ERR_ABORTED when its signal has fired, writing nothing', async () => {
      const signal = AbortSignal.abort()
      await expect(index.transaction((tx) => tx.add(index.refcounts, 'x', 1), { signal })).rejects.toMatchObject({
        code: 'ERR_ABORTED',
      })
      expect(index.refcounts.has('x')).toBe(false)
    })

    it('fails every call with ERR_CLOSED once closed', async () => {
      await index.close()
      expect(() => index.refs.get('k')).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }))
      expect(() => index.refs.entries()).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }))
      await expect(index.transaction(() => 1)).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    })

    if (options.reopen !== undefined) {
      const reopen = options.reopen

      it('keeps refs, counters and custom tables across a reopen', async () => {
        const extra = index.table<number>('extra')
        await index.transaction((tx) => {
          tx.put(index.refs, 'durable', ref('a'.repeat(64), 7))
          tx.add(index.refcounts, 'a'.repeat(64), 2)
          tx.put(extra, 'n', 5)
        })
        index = await reopen(index)
        expect(index.refs.get('durable')).toEqual(ref('a'.repeat(64), 7))
        expect(index.refcounts.get('a'.repeat(64))).toBe(2)
        expect(index.table<number>('extra').get('n')).toBe(5)
      })
    }
  })
}
