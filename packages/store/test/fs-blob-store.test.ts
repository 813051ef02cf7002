import { createHash } from 'node:crypto'
import * as nodeFs from 'node:fs'
import * as fsPromises from 'node:fs/promises'
import { mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { openBlobStore, type BlobStoreFs, type FsBlobStore } from '../src/index.js'
import { collect, heapAfterGc, patternBytes, sha256, toArray } from '../src/testing/index.js'
import { removeDir, tempDir } from './helpers.js'

/** Every file under `dir`, recursively, as paths relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1)).sort()
}

function failing(code: string): Error {
  return Object.assign(new Error(`${code}: injected failure`), { code })
}

describe('disk BlobStore', () => {
  let root: string
  let store: FsBlobStore | undefined

  beforeEach(async () => {
    root = await tempDir()
  })

  afterEach(async () => {
    await store?.close()
    store = undefined
    await removeDir(root)
  })

  it('writes each blob to blobs/ab/cd/<id>, a read-only file that hashes to its name', async () => {
    store = await openBlobStore({ root })
    const { id } = await store.put('check me with sha256sum')
    const path = join(root, 'blobs', id.slice(0, 2), id.slice(2, 4), id)
    expect(store.path(id)).toBe(path)
    expect(createHash('sha256').update(await readFile(path)).digest('hex')).toBe(id)
    expect((await stat(path)).mode & 0o777).toBe(0o400)
    expect(await readdir(join(root, 'tmp'))).toEqual([])
  })

  it('remembers the directories it made durable in a fixed size: thousands of puts into new ones keep no more memory', async () => {
    // fsync is a no-op here: the test is about what the store keeps, not about the disk.
    const fsync = ((_fd: number, done: (err: NodeJS.ErrnoException | null) => void) => done(null)) as BlobStoreFs['fsync']
    store = await openBlobStore({ root, fs: { ...nodeFs, ...fsPromises, fsync } })
    const put = async (from: number, count: number): Promise<void> => {
      for (let i = from; i < from + count; i += 64) await Promise.all(Array.from({ length: 64 }, (_, j) => store!.put(`blob ${i + j}`)))
    }
    await put(0, 1024)
    const before = await heapAfterGc()
    // About 7,000 fan-out directories new to this store: a promise and a path kept for each would be 2–3 MB.
    await put(1024, 10_240)
    expect((await heapAfterGc()) - before).toBeLessThan(1024 * 1024)
    expect(new Set((await filesUnder(join(root, 'blobs'))).map((f) => f.slice(0, 5))).size).toBeGreaterThan(7_000)
  }, 60_000)

  it('shares its write buffers with the other stores of the process: a streamed put into a warm pool allocates none', async () => {
    store = await openBlobStore({ root })
    const other = await openBlobStore({ root: join(root, 'replicas', 'b'.repeat(64)) })
    try {
      /** A blob that comes in pieces (as from a peer), so that the store copies them into a write buffer. */
      const streamed = (n: number): AsyncIterable<Uint8Array> => Readable.from([patternBytes(40_000, n), patternBytes(30_000, n + 1)])
      const writeBuffers = vi.spyOn(Buffer, 'allocUnsafeSlow')
      const bigOnes = (): number => writeBuffers.mock.calls.filter(([size]) => size >= 1024 * 1024).length
      // Eight at once in one store fill the pool; eight at once in another take them from it.
      await Promise.all(Array.from({ length: 8 }, (_, i) => store!.put(streamed(i))))
      const warm = bigOnes()
      await Promise.all(Array.from({ length: 8 }, (_, i) => other.put(streamed(100 + i))))
      expect(bigOnes()).toBe(warm)
      writeBuffers.mockRestore()
    } finally {
      await other.close()
    }
  })

  it('removes leftovers in tmp/ when it opens', async () => {
    await mkdir(join(root, 'tmp', 'half-dir'), { recursive: true })
    await writeFile(join(root, 'tmp', 'abc.tmp'), 'half a blob')
    await writeFile(join(root, 'tmp', 'half-dir', 'x'), 'more')
    store = await openBlobStore({ root })
    expect(await readdir(join(root, 'tmp'))).toEqual([])
  })

  it('keeps the fan-out directories and their other blobs when it deletes one', async () => {
    store = await openBlobStore({ root })
    const { id } = await store.put('alone in its directory')
    expect(await store.delete(id)).toBe(true)
    expect((await stat(join(root, 'blobs', id.slice(0, 2), id.slice(2, 4)))).isDirectory()).toBe(true)
  })

  it('lists only files that sit where their id belongs', async () => {
    store = await openBlobStore({ root })
    const { id } = await store.put('the real one')
    const stray = sha256('stray')
    await mkdir(join(root, 'blobs', '00', '00'), { recursive: true })
    await writeFile(join(root, 'blobs', '00', '00', stray), 'stray')
    await writeFile(join(root, 'blobs', 'README'), 'not a blob')
    expect(await toArray(store.list())).toEqual([id])
  })

  it('does not list the blobs of another store nested under its root', async () => {
    store = await openBlobStore({ root })
    const replica = await openBlobStore({ root: join(root, 'replicas', 'a'.repeat(64)) })
    const own = await store.put('own')
    const held = await replica.put('held for a peer')
    expect(await toArray(store.list())).toEqual([own.id])
    expect(await toArray(replica.list())).toEqual([held.id])
    expect(await store.has(held.id)).toBe(false)
    await replica.close()
  })

  it('follows a custom layout and finds its blobs again', async () => {
    const layout = (id: string): string => join('cas', id.slice(0, 5), id.slice(5, 10), id)
    store = await openBlobStore({ root, layout })
    const { id } = await store.put('laid out')
    expect(await filesUnder(join(root, 'cas'))).toEqual([join(id.slice(0, 5), id.slice(5, 10), id)])
    expect((await collect(store.get(id))).toString()).toBe('laid out')
    expect(await toArray(store.list())).toEqual([id])
  })

  it('accepts an absolute layout path under the root', async () => {
    store = await openBlobStore({ root, layout: (id) => join(root, 'flat', id) })
    const { id } = await store.put('absolute')
    expect(await filesUnder(join(root, 'flat'))).toEqual([id])
  })

  it('refuses layout paths outside the root, in tmp/ or not named by the id, with ERR_INVALID_PATH', async () => {
    const outside = await tempDir()
    try {
      const layouts = [
        (id: string) => join('..', id),
        (id: string) => join(outside, id),
        (id: string) => join('tmp', id),
        () => 'blobs/not-the-id',
        () => '',
      ]
      for (const layout of layouts) {
        const bad = await openBlobStore({ root, layout })
        await expect(bad.put('x'), String(layout)).rejects.toMatchObject({ code: 'ERR_INVALID_PATH' })
        await expect(collect(bad.get(sha256('x')))).rejects.toMatchObject({ code: 'ERR_INVALID_PATH' })
        await bad.close()
      }
      expect(await readdir(outside)).toEqual([])
      expect(await filesUnder(root)).toEqual([])
    } finally {
      await removeDir(outside)
    }
  })

  it('serves a verified range of a blob larger than maxBufferedRead, in bounded pieces', async () => {
    store = await openBlobStore({ root, maxBufferedRead: 64 * 1024 })
    const bytes = patternBytes(3 * 1024 * 1024 + 17, 4)
    const { id } = await store.put(bytes)
    const pieces = await toArray(store.get(id, { offset: 100_000, length: 2_500_000 }))
    expect(Math.max(...pieces.map((p) => p.byteLength))).toBeLessThanOrEqual(1024 * 1024)
    expect(Buffer.concat(pieces).equals(bytes.subarray(100_000, 2_600_000))).toBe(true)
  })

  it('fails a blob truncated on disk with ERR_INTEGRITY', async () => {
    store = await openBlobStore({ root })
    const { id } = await store.put(patternBytes(5000, 2))
    await fsPromises.chmod(store.path(id), 0o600)
    await fsPromises.truncate(store.path(id), 4000)
    await expect(collect(store.get(id))).rejects.toMatchObject({ code: 'ERR_INTEGRITY' })
  })

  it('does not follow a symbolic link put in place of a blob', async () => {
    store = await openBlobStore({ root })
    const { id } = await store.put('target')
    const path = store.path(id)
    await fsPromises.rm(path)
    await writeFile(join(root, 'elsewhere'), 'target')
    await symlink(join(root, 'elsewhere'), path)
    await expect(collect(store.get(id))).rejects.toMatchObject({ code: 'ERR_IO' })
  })

  it('turns an I/O failure into ERR_IO with its cause, keeping no partial blob and serving reads', async () => {
    const fs: BlobStoreFs = {
      ...nodeFs,
      ...fsPromises,
      renameSync: () => {
        throw failing('EIO')
      },
    }
    const good = await openBlobStore({ root })
    const kept = await good.put('already stored')
    await good.close()
    store = await openBlobStore({ root, fs })
    const error = await store.put('never lands').then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(error).toMatchObject({ code: 'ERR_IO', cause: { code: 'EIO' } })
    expect(await readdir(join(root, 'tmp'))).toEqual([])
    expect(await store.has(sha256('never lands'))).toBe(false)
    expect((await collect(store.get(kept.id))).toString()).toBe('already stored')
  })

  it('reports a read it is not allowed to make as ERR_IO', async () => {
    const writer = await openBlobStore({ root })
    const { id } = await writer.put('private')
    await writer.close()
    const realOpen = fsPromises.open as (path: string, ...rest: unknown[]) => Promise<fsPromises.FileHandle>
    const open = (path: string, ...rest: unknown[]) =>
      path === writer.path(id) ? Promise.reject(failing('EACCES')) : realOpen(path, ...rest)
    store = await openBlobStore({ root, fs: { ...nodeFs, ...fsPromises, open: open as BlobStoreFs['open'] } })
    await expect(collect(store.get(id))).rejects.toMatchObject({ code: 'ERR_IO', cause: { code: 'EACCES' } })
  })
})
