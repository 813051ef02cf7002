// The disk store's write path: group durability (the order of fsyncs and renames a crash relies
// on), failures in the middle of a commit, and sources that reuse their buffers.
import * as nodeFs from 'node:fs'
import * as fsPromises from 'node:fs/promises'
import { readdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { hashBlob, openBlobStore, type BlobStoreFs, type FsBlobStore } from '../src/index.js'
import { collect, patternBytes, sha256, toArray } from '../src/testing/index.js'
import { removeDir, tempDir } from './helpers.js'

function failing(code: string): Error {
  return Object.assign(new Error(`${code}: injected failure`), { code })
}

/** node:fs with every call of the write path recorded in order (fsyncs when they complete), by path. */
function recordingFs(): { fs: BlobStoreFs; log: string[] } {
  const log: string[] = []
  const pathOf = new Map<number, string>()
  const fs: BlobStoreFs = {
    ...nodeFs,
    ...fsPromises,
    openSync: ((path: string, flags: string | number, mode?: number) => {
      const fd = nodeFs.openSync(path, flags, mode)
      pathOf.set(fd, path)
      return fd
    }) as BlobStoreFs['openSync'],
    closeSync: (fd) => {
      pathOf.delete(fd)
      nodeFs.closeSync(fd)
    },
    renameSync: (from, to) => {
      nodeFs.renameSync(from, to)
      log.push(`rename ${String(from)} ${String(to)}`)
    },
    fsync: ((fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => {
      const path = pathOf.get(fd)
      nodeFs.fsync(fd, (err) => {
        log.push(`fsync ${path}`)
        callback(err)
      })
    }) as BlobStoreFs['fsync'],
  }
  return { fs, log }
}

/** A source that yields the same buffer again and again, refilled between pulls (as some readers do). */
async function* reusingSource(pieces: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  const buffer = Buffer.alloc(Math.max(...pieces.map((p) => p.byteLength)))
  for (const piece of pieces) {
    buffer.set(piece)
    yield buffer.subarray(0, piece.byteLength)
    await Promise.resolve()
    buffer.fill(0xee)
  }
}

describe('disk BlobStore writes', () => {
  let root: string
  let store: FsBlobStore | undefined

  beforeEach(async () => {
    root = await tempDir()
  })

  /** A failed commit left no blob under its id and nothing in tmp/. */
  async function expectNothingPlaced(): Promise<void> {
    expect(await toArray(store!.list())).toEqual([])
    expect(await readdir(join(root, 'tmp'))).toEqual([])
  }

  afterEach(async () => {
    await store?.close()
    store = undefined
    await removeDir(root)
  })

  it('fsyncs every file before any rename, then each touched directory and the parent of each directory it made, all before the commit ends', async () => {
    const { fs, log } = recordingFs()
    store = await openBlobStore({ root, fs })
    const active = store
    // Two blobs in one directory (the same first four hex digits) and some elsewhere.
    const contents: string[] = []
    const byDir = new Map<string, string>()
    for (let i = 0; contents.length < 2; i++) {
      const dir = sha256(`sibling ${i}`).slice(0, 4)
      const other = byDir.get(dir)
      if (other !== undefined) contents.push(other, `sibling ${i}`)
      byDir.set(dir, `sibling ${i}`)
    }
    contents.push('elsewhere 1', 'elsewhere 2')
    const batch = active.batch()
    const ids = (await Promise.all(contents.map((c) => batch.put(c)))).map((info) => info.id)
    log.length = 0
    await batch.commit()

    const paths = ids.map((id) => active.path(id))
    const renames = log.flatMap((line, at) => (line.startsWith('rename ') ? [{ at, to: line.split(' ')[2]! }] : []))
    expect(renames.map((r) => r.to).sort()).toEqual([...paths].sort())
    const firstRename = Math.min(...renames.map((r) => r.at))
    const lastRename = Math.max(...renames.map((r) => r.at))
    // No file fsync is left after the first rename: every blob was durable before any became visible.
    expect(log.slice(firstRename).filter((line) => line.startsWith('fsync ') && line.includes(`${join(root, 'tmp')}/`))).toEqual([])
    // The fan-out directories `ab/` exist from the store's opening; each `ab/cd/` is new here. Each fsync is
    // logged when it completes, so all of these were durable when the commit resolved.
    const leaves = [...new Set(paths.map((p) => dirname(p)))]
    const dirSyncs = log.slice(lastRename).filter((line) => line.startsWith('fsync ')).map((line) => line.slice(6))
    expect(dirSyncs.sort()).toEqual([...leaves, ...new Set(leaves.map((dir) => dirname(dir)))].sort())

    // The next commit into the same directories fsyncs only them: their entries are durable already.
    const prefixes = new Set(ids.map((id) => id.slice(0, 4)))
    let into = 0
    while (!prefixes.has(sha256(`into a known directory ${into}`).slice(0, 4))) into++
    const again = active.batch()
    const more = await Promise.all([`into a known directory ${into}`, 'a new directory'].map((c) => again.put(c)))
    const sameDir = more.filter((info) => leaves.includes(dirname(active.path(info.id))))
    log.length = 0
    await again.commit()
    const newLeaves = [...new Set(more.map((info) => dirname(active.path(info.id))))]
    const made = newLeaves.filter((dir) => !leaves.includes(dir))
    expect(log.filter((line) => line.startsWith('fsync ') && !line.includes(`${join(root, 'tmp')}/`)).map((line) => line.slice(6)).sort())
      .toEqual([...newLeaves, ...new Set(made.map((dir) => dirname(dir)))].sort())
    expect(sameDir).toHaveLength(1)
  })

  it('fails the commit with ERR_IO when an fsync fails, leaving no blob, an empty tmp/ and an aborted batch', async () => {
    let broken = false
    const fsync = ((fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => {
      if (broken) callback(failing('EIO'))
      else nodeFs.fsync(fd, callback)
    }) as BlobStoreFs['fsync']
    store = await openBlobStore({ root, fs: { ...nodeFs, ...fsPromises, fsync } })
    broken = true
    const batch = store.batch()
    await batch.put('one')
    await batch.put(patternBytes(70_000, 1))
    await expect(batch.commit()).rejects.toMatchObject({ code: 'ERR_IO', cause: { code: 'EIO' } })
    await expectNothingPlaced()
    await expect(batch.put('again')).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })

  it('fails a commit whose blob directory cannot be made with ERR_IO, before placing anything', async () => {
    const fs: BlobStoreFs = {
      ...nodeFs,
      ...fsPromises,
      mkdirSync: () => {
        throw failing('EACCES')
      },
    }
    store = await openBlobStore({ root, fs })
    const batch = store.batch()
    await batch.put('one')
    await batch.put('two')
    await expect(batch.commit()).rejects.toMatchObject({ code: 'ERR_IO', cause: { code: 'EACCES' } })
    await expectNothingPlaced()
  })

  it('fails a commit with ERR_IO when a directory removed behind its back cannot be made again', async () => {
    let mkdirs = 0
    const fs: BlobStoreFs = {
      ...nodeFs,
      ...fsPromises,
      // The first mkdir works; the directory then goes, and every later one fails.
      mkdirSync: ((path: string, options: nodeFs.MakeDirectoryOptions) => {
        if (++mkdirs > 1) throw failing('EACCES')
        return nodeFs.mkdirSync(path, options)
      }) as BlobStoreFs['mkdirSync'],
      renameSync: () => {
        throw failing('ENOENT')
      },
    }
    store = await openBlobStore({ root, fs })
    const batch = store.batch()
    await batch.put('only')
    await expect(batch.commit()).rejects.toMatchObject({ code: 'ERR_IO', cause: { code: 'EACCES' } })
    await expectNothingPlaced()
  })

  it('keeps the blobs placed before a rename failed, and drops the rest', async () => {
    let renames = 0
    const fs: BlobStoreFs = {
      ...nodeFs,
      ...fsPromises,
      renameSync: (from, to) => {
        if (++renames === 2) throw failing('EIO')
        nodeFs.renameSync(from, to)
      },
    }
    store = await openBlobStore({ root, fs })
    const batch = store.batch()
    const infos = [await batch.put('placed'), await batch.put('failed'), await batch.put('never tried')]
    await expect(batch.commit()).rejects.toMatchObject({ code: 'ERR_IO' })
    expect(await toArray(store.list())).toEqual([infos[0]!.id])
    expect((await collect(store.get(infos[0]!.id))).toString()).toBe('placed')
    expect(await readdir(join(root, 'tmp'))).toEqual([])
  })

  it('leaves tmp/ empty after an abort, and after a close with a batch holding uncommitted blobs after an earlier commit', async () => {
    store = await openBlobStore({ root })
    const first = store.batch()
    await first.put(patternBytes(300_000, 2))
    await first.abort()
    expect(await readdir(join(root, 'tmp'))).toEqual([])
    const open = store.batch()
    const committed = await open.put('committed before')
    await open.commit()
    const { id } = await open.put('left open')
    await store.close()
    expect(await readdir(join(root, 'tmp'))).toEqual([])
    store = await openBlobStore({ root })
    expect(await store.has(id)).toBe(false)
    expect(await toArray(store.list())).toEqual([committed.id])
  })

  it('stores what a source yielded even when it reuses its buffer between pieces', async () => {
    store = await openBlobStore({ root })
    const bytes = patternBytes(3 * 1024 * 1024 + 7, 3)
    const pieces: Uint8Array[] = []
    for (let at = 0; at < bytes.byteLength; at += 16_384) pieces.push(bytes.subarray(at, at + 16_384))
    const { id } = await store.put(reusingSource(pieces))
    expect(id).toBe(sha256(bytes))
    expect((await collect(store.get(id))).equals(bytes)).toBe(true)
  })

  it('writes every byte through short writes', async () => {
    const fs: BlobStoreFs = {
      ...nodeFs,
      ...fsPromises,
      writevSync: ((fd: number, buffers: readonly NodeJS.ArrayBufferView[]) => {
        const first = buffers[0]!
        return nodeFs.writevSync(fd, [new Uint8Array(first.buffer, first.byteOffset, Math.min(first.byteLength, 1000))])
      }),
    }
    store = await openBlobStore({ root, fs })
    const bytes = patternBytes(1024 * 1024 + 3, 4)
    const pieces = [bytes.subarray(0, 10), bytes.subarray(10, 70_000), bytes.subarray(70_000)]
    for (const source of [bytes, hashBlob(pieces), pieces]) {
      const { id } = await store.put(source)
      expect((await collect(store.get(id))).equals(bytes)).toBe(true)
    }
  })

  it('refuses a hashed blob under a wrong id before writing anything', async () => {
    const { fs, log } = recordingFs()
    store = await openBlobStore({ root, fs })
    const hashed = hashBlob([Buffer.from('hashed '), Buffer.from('once')])
    log.length = 0
    await expect(store.putExpected(sha256('another'), hashed)).rejects.toMatchObject({ code: 'ERR_INTEGRITY' })
    expect(log).toEqual([])
    expect(await readdir(join(root, 'tmp'))).toEqual([])
    await store.put(hashed)
    expect((await collect(store.get(hashed.id))).toString()).toBe('hashed once')
  })

  it('takes the id of a hashed blob on trust at write, and still never serves bytes that do not match it', async () => {
    store = await openBlobStore({ root })
    const bytes = Buffer.from('hashed, then changed')
    const hashed = hashBlob(bytes)
    // Against the contract of hashBlob: it shows the put does not hash a second time.
    bytes[0] = 0x48
    await store.put(hashed)
    expect(await store.has(hashed.id)).toBe(true)
    await expect(collect(store.get(hashed.id))).rejects.toMatchObject({ code: 'ERR_INTEGRITY' })
    expect((await toArray(store.scrub())).map((r) => r.ok)).toEqual([false])
  })
})
