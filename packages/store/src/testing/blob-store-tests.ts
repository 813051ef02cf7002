import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { hashBlob } from '../internal/hashed.js'
import type { BlobStore } from '../types.js'
import { collect, patternBytes, sha256, siblingContents, toArray } from './helpers.js'

/** How {@link blobStoreTests} makes and disposes of the store under test. */
export interface BlobStoreTestOptions<S extends BlobStore = BlobStore> {
  /** Name shown in the test report (default `BlobStore`). */
  name?: string
  /** Makes a fresh, empty store. */
  setup: () => Promise<S>
  /** Disposes of a store made by `setup` (it may already be closed). */
  teardown: (store: S) => Promise<void>
  /** Flips a bit of a stored blob, so that the integrity tests run; they are left out without it. */
  damage?: (store: S, id: string) => Promise<void> | void
}

const EMPTY_ID = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

async function* slowly(parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) {
    await Promise.resolve()
    yield part
  }
}

/**
 * The compliance suite every {@link BlobStore} passes, written with vitest's `describe`/`it`.
 *
 * @example
 * ```ts
 * blobStoreTests({ setup: async () => createMemoryBlobStore(), teardown: (store) => store.close() })
 * ```
 */
export function blobStoreTests<S extends BlobStore>(options: BlobStoreTestOptions<S>): void {
  describe(`${options.name ?? 'BlobStore'} compliance`, () => {
    let store: S

    beforeEach(async () => {
      store = await options.setup()
    })

    afterEach(async () => {
      await options.teardown(store)
    })

    it('names a blob by the SHA-256 of its bytes and reads it back', async () => {
      const info = await store.put('hello, world')
      expect(info).toEqual({ id: sha256('hello, world'), size: 12 })
      expect((await collect(store.get(info.id))).toString()).toBe('hello, world')
    })

    it('gives the same id to the same bytes from every kind of source', async () => {
      const bytes = patternBytes(100_000, 7)
      const parts = [bytes.subarray(0, 10), bytes.subarray(10, 70_000), bytes.subarray(70_000)]
      const ids = [
        (await store.put(bytes)).id,
        (await store.put(parts)).id,
        (await store.put(slowly(parts))).id,
        (await store.put(new Uint8Array(bytes))).id,
      ]
      expect(new Set(ids)).toEqual(new Set([sha256(bytes)]))
      expect(await store.put('text').then((info) => info.id)).toBe(sha256('text'))
    })

    it('stores the empty blob and reads it back as no bytes', async () => {
      expect(await store.put(new Uint8Array(0))).toEqual({ id: EMPTY_ID, size: 0 })
      expect(await store.put([])).toEqual({ id: EMPTY_ID, size: 0 })
      expect((await collect(store.get(EMPTY_ID))).byteLength).toBe(0)
      expect(await store.stat(EMPTY_ID)).toEqual({ id: EMPTY_ID, size: 0 })
    })

    it('streams a multi-megabyte blob written in many small chunks', async () => {
      const bytes = patternBytes(5 * 1024 * 1024 + 3, 11)
      const parts: Uint8Array[] = []
      for (let at = 0; at < bytes.byteLength; at += 64 * 1024) parts.push(bytes.subarray(at, at + 64 * 1024))
      const { id, size } = await store.put(slowly(parts))
      expect(size).toBe(bytes.byteLength)
      let total = 0
      for await (const piece of store.get(id)) {
        expect(piece.byteLength).toBeLessThanOrEqual(4 * 1024 * 1024)
        total += piece.byteLength
      }
      expect(total).toBe(bytes.byteLength)
      expect(sha256(await collect(store.get(id)))).toBe(id)
    })

    it('keeps its own copy of the bytes a caller reuses after put', async () => {
      const buffer = Buffer.from('original bytes')
      const { id } = await store.put(buffer)
      buffer.fill(0)
      expect((await collect(store.get(id))).toString()).toBe('original bytes')
    })

    it('serves byte ranges: offset, length, both, empty and at the end', async () => {
      const bytes = patternBytes(10_000, 3)
      const { id } = await store.put(bytes)
      expect(await collect(store.get(id, { offset: 9_000 }))).toEqual(bytes.subarray(9_000))
      expect(await collect(store.get(id, { length: 10 }))).toEqual(bytes.subarray(0, 10))
      expect(await collect(store.get(id, { offset: 1234, length: 4321 }))).toEqual(bytes.subarray(1234, 5555))
      expect((await collect(store.get(id, { offset: 5, length: 0 }))).byteLength).toBe(0)
      expect((await collect(store.get(id, { offset: 10_000 }))).byteLength).toBe(0)
    })

    it('rejects ranges that are negative, fractional or past the end with ERR_INVALID_RANGE', async () => {
      const { id } = await store.put('0123456789')
      for (const range of [{ offset: -1 }, { length: -1 }, { offset: 1.5 }, { offset: 11 }, { offset: 5, length: 6 }]) {
        await expect(collect(store.get(id, range)), JSON.stringify(range)).rejects.toMatchObject({ code: 'ERR_INVALID_RANGE' })
      }
    })

    it('accepts bytes under the id they hash to with putExpected', async () => {
      const id = sha256('expected')
      expect(await store.putExpected(id, 'expected')).toEqual({ id, size: 8 })
      expect(await store.has(id)).toBe(true)
    })

    it('rejects bytes that do not hash to the expected id with ERR_INTEGRITY and keeps nothing', async () => {
      const claimed = sha256('what was promised')
      await expect(store.putExpected(claimed, 'what was sent')).rejects.toMatchObject({ code: 'ERR_INTEGRITY' })
      expect(await store.has(claimed)).toBe(false)
      expect(await store.has(sha256('what was sent'))).toBe(false)
      expect(await toArray(store.list())).toHaveLength(0)
    })

    it('rejects malformed ids with ERR_INVALID_ID everywhere', async () => {
      const bad = ['', 'abc', EMPTY_ID.toUpperCase(), `${EMPTY_ID}0`, '../../../../etc/passwd', `../${EMPTY_ID.slice(3)}`]
      for (const id of bad) {
        await expect(collect(store.get(id)), id).rejects.toMatchObject({ code: 'ERR_INVALID_ID' })
        await expect(store.has(id), id).rejects.toMatchObject({ code: 'ERR_INVALID_ID' })
        await expect(store.stat(id), id).rejects.toMatchObject({ code: 'ERR_INVALID_ID' })
        await expect(store.delete(id), id).rejects.toMatchObject({ code: 'ERR_INVALID_ID' })
        await expect(store.putExpected(id, 'x'), id).rejects.toMatchObject({ code: 'ERR_INVALID_ID' })
      }
    })

    it('fails get of an unknown id with ERR_NOT_FOUND', async () => {
      await expect(collect(store.get(sha256('never stored')))).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' })
    })

    it('answers has and stat for stored and unknown ids', async () => {
      const { id } = await store.put('present')
      expect(await store.has(id)).toBe(true)
      expect(await store.stat(id)).toEqual({ id, size: 7 })
      expect(await store.has(sha256('absent'))).toBe(false)
      expect(await store.stat(sha256('absent'))).toBeUndefined()
    })

    it('stores the same bytes once, also from concurrent puts', async () => {
      const bytes = patternBytes(300_000, 5)
      const results = await Promise.all([store.put(bytes), store.put(slowly([bytes])), store.put(bytes), store.put(bytes)])
      for (const info of results) expect(info).toEqual({ id: sha256(bytes), size: bytes.byteLength })
      expect(await toArray(store.list())).toEqual([sha256(bytes)])
      expect((await collect(store.get(sha256(bytes)))).equals(bytes)).toBe(true)
    })

    it('deletes one blob, reports whether it existed, and leaves its neighbours', async () => {
      const [first, second] = siblingContents()
      const a = await store.put(first)
      const b = await store.put(second)
      expect(a.id.slice(0, 4)).toBe(b.id.slice(0, 4))
      expect(await store.delete(a.id)).toBe(true)
      expect(await store.delete(a.id)).toBe(false)
      expect(await store.has(a.id)).toBe(false)
      await expect(collect(store.get(a.id))).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' })
      expect((await collect(store.get(b.id))).toString()).toBe(second)
      expect(await toArray(store.list())).toEqual([b.id])
    })

    it('lists every stored id once', async () => {
      const ids = new Set<string>()
      for (let i = 0; i < 40; i++) ids.add((await store.put(`blob ${i}`)).id)
      await store.put('blob 0')
      const listed = await toArray(store.list())
      expect(listed).toHaveLength(40)
      expect(new Set(listed)).toEqual(ids)
    })

    it('scrubs intact blobs as ok', async () => {
      const ids = [(await store.put('one')).id, (await store.put('two')).id, (await store.put(new Uint8Array(0))).id]
      const results = await toArray(store.scrub())
      expect(results.map((r) => r.id).sort()).toEqual([...ids].sort())
      expect(results.every((r) => r.ok)).toBe(true)
    })

    it('refuses a source chunk that is not bytes with ERR_INVALID_ARGUMENT and keeps nothing', async () => {
      const source = [Buffer.from('ok'), 'not bytes' as unknown as Uint8Array]
      await expect(store.put(source)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      await expect(store.put(42 as unknown as Uint8Array)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
      expect(await toArray(store.list())).toHaveLength(0)
    })

    it('passes on the error of a failing source and keeps nothing', async () => {
      const failure = new Error('the network went away')
      async function* failing(): AsyncGenerator<Uint8Array> {
        yield await Promise.resolve(Buffer.from('partial'))
        throw failure
      }
      await expect(store.put(failing())).rejects.toBe(failure)
      expect(await toArray(store.list())).toHaveLength(0)
    })

    it('fails with ERR_ABORTED when the signal has already fired', async () => {
      const { id } = await store.put('data')
      const signal = AbortSignal.abort(new Error('stop'))
      await expect(store.put('more', { signal })).rejects.toMatchObject({ code: 'ERR_ABORTED' })
      await expect(collect(store.get(id, { signal }))).rejects.toMatchObject({ code: 'ERR_ABORTED' })
      await expect(store.has(id, { signal })).rejects.toMatchObject({ code: 'ERR_ABORTED' })
      await expect(store.delete(id, { signal })).rejects.toMatchObject({ code: 'ERR_ABORTED' })
      expect(await store.has(id)).toBe(true)
    })

    it('aborts a put whose source stalls, keeping nothing', async () => {
      const controller = new AbortController()
      let pulled!: () => void
      const firstPulled = new Promise<void>((resolve) => (pulled = resolve))
      const stalled: AsyncIterable<Uint8Array> = {
        [Symbol.asyncIterator]: () => {
          let sent = false
          return {
            next: () => {
              if (!sent) {
                sent = true
                return Promise.resolve({ done: false, value: Buffer.from('first chunk') })
              }
              pulled()
              return new Promise<IteratorResult<Uint8Array>>(() => undefined)
            },
          }
        },
      }
      const put = store.put(stalled, { signal: controller.signal })
      await firstPulled
      controller.abort()
      await expect(put).rejects.toMatchObject({ code: 'ERR_ABORTED' })
      expect(await toArray(store.list())).toHaveLength(0)
    })

    it('fails every call with ERR_CLOSED once closed', async () => {
      const { id } = await store.put('before close')
      await store.close()
      await expect(store.put('after close')).rejects.toMatchObject({ code: 'ERR_CLOSED' })
      await expect(collect(store.get(id))).rejects.toMatchObject({ code: 'ERR_CLOSED' })
      await expect(store.has(id)).rejects.toMatchObject({ code: 'ERR_CLOSED' })
      await expect(toArray(store.list())).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    })

    describe('hashBlob', () => {
      it('stores a hashed blob under the id hashBlob gave it', async () => {
        const bytes = patternBytes(200_000, 21)
        const hashed = hashBlob(bytes)
        expect(hashed).toMatchObject({ id: sha256(bytes), size: bytes.byteLength })
        expect(await store.put(hashed)).toEqual({ id: sha256(bytes), size: bytes.byteLength })
        expect((await collect(store.get(hashed.id))).equals(bytes)).toBe(true)
      })

      it('hashes pieces as one blob, the empty blob and exact multiples of 64 KiB', async () => {
        const bytes = patternBytes(3 * 64 * 1024, 22)
        const pieces = [bytes.subarray(0, 1), bytes.subarray(1, 64 * 1024 + 5), bytes.subarray(64 * 1024 + 5)]
        for (const hashed of [hashBlob(pieces), hashBlob(bytes), hashBlob([]), hashBlob(new Uint8Array(0)), hashBlob(bytes.subarray(0, 64 * 1024))]) {
          const info = await store.putExpected(hashed.id, hashed)
          expect(info).toEqual({ id: hashed.id, size: hashed.size })
          expect(sha256(await collect(store.get(info.id)))).toBe(info.id)
        }
        expect(hashBlob(pieces).id).toBe(sha256(bytes))
        expect(hashBlob([]).id).toBe(EMPTY_ID)
      })

      it('refuses a hashed blob under another id with ERR_INTEGRITY and keeps nothing', async () => {
        const hashed = hashBlob(Buffer.from('what was hashed'))
        await expect(store.putExpected(sha256('something else'), hashed)).rejects.toMatchObject({ code: 'ERR_INTEGRITY' })
        expect(await toArray(store.list())).toHaveLength(0)
      })

      it('refuses an object shaped like a hashed blob that hashBlob did not make, keeping nothing', async () => {
        const forged = { id: sha256('claimed'), size: 5, pieces: [Buffer.from('other')] }
        await expect(store.put(forged as unknown as Uint8Array)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
        expect(() => hashBlob('text' as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }))
        expect(await toArray(store.list())).toHaveLength(0)
      })
    })

    describe('batch', () => {
      it('keeps its blobs invisible until commit, then durable and readable', async () => {
        const batch = store.batch()
        const a = await batch.put('first of the batch')
        const b = await batch.put(patternBytes(100_000, 23))
        expect(a).toEqual({ id: sha256('first of the batch'), size: 18 })
        expect(await store.has(a.id)).toBe(false)
        await expect(collect(store.get(b.id))).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' })
        expect(await toArray(store.list())).toHaveLength(0)
        await batch.commit()
        expect(await store.has(a.id)).toBe(true)
        expect((await collect(store.get(b.id))).equals(patternBytes(100_000, 23))).toBe(true)
        expect(new Set(await toArray(store.list()))).toEqual(new Set([a.id, b.id]))
      })

      it('takes every kind of source, concurrent puts, the empty blob and exact 64 KiB multiples', async () => {
        const batch = store.batch()
        const big = patternBytes(2 * 64 * 1024, 24)
        const parts = [big.subarray(0, 100), big.subarray(100)]
        const infos = await Promise.all([
          batch.put(big),
          batch.put(slowly(parts)),
          batch.put(parts),
          batch.put(hashBlob(parts)),
          batch.put(new Uint8Array(0)),
          batch.put(patternBytes(64 * 1024, 25)),
          batch.putExpected(sha256('expected'), 'expected'),
        ])
        expect(infos.slice(0, 4).every((info) => info.id === sha256(big))).toBe(true)
        await batch.commit()
        expect(new Set(await toArray(store.list()))).toEqual(new Set([sha256(big), EMPTY_ID, sha256(patternBytes(64 * 1024, 25)), sha256('expected')]))
        expect((await collect(store.get(sha256(big)))).equals(big)).toBe(true)
      })

      it('commits what was put since the previous commit, and an empty batch', async () => {
        const batch = store.batch()
        await batch.commit()
        const first = await batch.put('round one')
        await batch.commit()
        const second = await batch.put('round two')
        expect(await store.has(first.id)).toBe(true)
        expect(await store.has(second.id)).toBe(false)
        await batch.commit()
        expect(await store.has(second.id)).toBe(true)
      })

      it('waits for the puts in flight before it commits, and commits in order', async () => {
        const batch = store.batch()
        const put = batch.put(slowly([Buffer.from('slow '), Buffer.from('source')]))
        const committed = Promise.all([batch.commit(), batch.commit()])
        const { id } = await put
        await committed
        expect((await collect(store.get(id))).toString()).toBe('slow source')
      })

      it('leaves a failed put out of the commit and commits the others', async () => {
        const batch = store.batch()
        const good = await batch.put('good')
        await expect(batch.putExpected(sha256('promised'), 'sent')).rejects.toMatchObject({ code: 'ERR_INTEGRITY' })
        await expect(batch.put(['ok', 42] as unknown as Uint8Array[])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
        const aborted = batch.put('aborted', { signal: AbortSignal.abort(new Error('stop')) })
        await expect(aborted).rejects.toMatchObject({ code: 'ERR_ABORTED' })
        await batch.commit()
        expect(await toArray(store.list())).toEqual([good.id])
      })

      it('aborts a put into a batch whose source stalls mid-way, keeping nothing of it', async () => {
        const batch = store.batch()
        const kept = await batch.put('kept')
        const controller = new AbortController()
        let pulled!: () => void
        const secondPull = new Promise<void>((resolve) => (pulled = resolve))
        async function* stalling(): AsyncGenerator<Uint8Array> {
          yield patternBytes(100_000, 26)
          pulled()
          await new Promise<never>(() => undefined)
        }
        const put = batch.put(stalling(), { signal: controller.signal })
        await secondPull
        controller.abort()
        await expect(put).rejects.toMatchObject({ code: 'ERR_ABORTED' })
        await batch.commit()
        expect(await toArray(store.list())).toEqual([kept.id])
      })

      it('drops everything not committed on abort, and refuses further use with ERR_CLOSED', async () => {
        const batch = store.batch()
        const kept = await batch.put('committed')
        await batch.commit()
        const dropped = await batch.put('dropped')
        await batch.abort()
        expect(await store.has(dropped.id)).toBe(false)
        expect(await store.has(kept.id)).toBe(true)
        await expect(batch.put('later')).rejects.toMatchObject({ code: 'ERR_CLOSED' })
        await expect(batch.commit()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
        await batch.abort()
      })

      it('fails a commit whose signal has fired with ERR_ABORTED and drops its blobs', async () => {
        const batch = store.batch()
        const { id } = await batch.put('never committed')
        await expect(batch.commit({ signal: AbortSignal.abort(new Error('stop')) })).rejects.toMatchObject({ code: 'ERR_ABORTED' })
        expect(await store.has(id)).toBe(false)
        await expect(batch.commit()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
      })

      it('drops uncommitted blobs when the store closes', async () => {
        const batch = store.batch()
        const { id } = await batch.put('open at close')
        await store.close()
        await expect(batch.commit()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
        expect(() => store.batch()).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }))
        expect(id).toBe(sha256('open at close'))
      })
    })

    if (options.damage !== undefined) {
      const damage = options.damage

      it('fails get of a damaged blob with ERR_INTEGRITY without yielding a byte', async () => {
        const { id } = await store.put(patternBytes(3000, 9))
        await damage(store, id)
        let yielded = 0
        const reading = (async () => {
          for await (const piece of store.get(id)) yielded += piece.byteLength
        })()
        await expect(reading).rejects.toMatchObject({ code: 'ERR_INTEGRITY' })
        expect(yielded).toBe(0)
        await expect(collect(store.get(id, { offset: 2000, length: 10 }))).rejects.toMatchObject({ code: 'ERR_INTEGRITY' })
      })

      it('reports a damaged blob in scrub and the others as ok', async () => {
        const good = await store.put('good')
        const bad = await store.put('bad blob')
        await damage(store, bad.id)
        const results = new Map((await toArray(store.scrub())).map((r) => [r.id, r.ok]))
        expect(results).toEqual(new Map([[good.id, true], [bad.id, false]]))
      })

      it('heals a damaged blob when the same bytes are put again', async () => {
        const { id } = await store.put('heal me')
        await damage(store, id)
        await store.put('heal me')
        expect((await collect(store.get(id))).toString()).toBe('heal me')
      })
    }
  })
}
