// The holder's writes of the blobs an owner sends: one request's blobs are written into one batch of the
// owner's replica store and made durable together before the ref is committed and answered; nothing of a
// request that fails or is abandoned is kept, and the owner's byte quota counts what it is sending.
import * as nodeFs from 'node:fs'
import * as fsPromises from 'node:fs/promises'
import { readdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { createMemoryNetwork, memoryTransport, type Connection, type Transport } from '@dcas/p2p'
import { createMemoryIndex, type BlobStoreFs } from '@dcas/store'
import { afterEach, describe, expect, it } from 'vitest'
import { RefStream, type RefPut } from '../src/client.js'
import { serveRequest, sweepReceived } from '../src/holder-requests.js'
import { MAX_UNCOMMITTED_BLOBS } from '../src/holder-writes.js'
import { holderTables, type HolderContext } from '../src/holder-state.js'
import { KeyedLocks } from '../src/locks.js'
import { silentLogger } from '../src/logger.js'
import { ReplicaSpace, type HolderLimits } from '../src/replica-space.js'
import { Exchange, PROTOCOL_VERSION } from '../src/wire.js'
import { bytes, filesUnder, sha256, tempDir } from './helpers.js'

interface Blob {
  id: string
  bytes: Buffer
}

const blobOf = (size: number): Blob => {
  const b = bytes(size)
  return { id: sha256(b), bytes: b }
}

/** The write path's file system calls in order (fsyncs when they complete), by path; `until` awaits a state of the log. */
function recordingFs(fail: { rename?: (to: string) => boolean } = {}): { fs: BlobStoreFs; log: string[]; until: (done: (log: string[]) => boolean) => Promise<void> } {
  const log: string[] = []
  const waiters = new Set<() => void>()
  const push = (line: string): void => {
    log.push(line)
    for (const check of [...waiters]) check()
  }
  const pathOf = new Map<number, string>()
  const fs: BlobStoreFs = {
    ...nodeFs,
    ...fsPromises,
    openSync: ((path: string, flags: string | number, mode?: number) => {
      const fd = nodeFs.openSync(path, flags, mode)
      pathOf.set(fd, path)
      push(`open ${path}`)
      return fd
    }) as BlobStoreFs['openSync'],
    closeSync: (fd) => {
      pathOf.delete(fd)
      nodeFs.closeSync(fd)
    },
    renameSync: (from, to) => {
      if (fail.rename?.(String(to)) === true) throw Object.assign(new Error('EIO: injected failure'), { code: 'EIO' })
      nodeFs.renameSync(from, to)
      push(`rename ${String(from)} ${String(to)}`)
    },
    fsync: ((fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => {
      const path = pathOf.get(fd)
      nodeFs.fsync(fd, (err) => {
        push(`fsync ${path}`)
        callback(err)
      })
    }) as BlobStoreFs['fsync'],
  }
  const until = (done: (log: string[]) => boolean): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => {
        if (!done(log)) return
        waiters.delete(check)
        resolve()
      }
      waiters.add(check)
      check()
    })
  return { fs, log, until }
}

/** A holder's request handling over its own replica space, and an owner connected to it. */
interface Fixture {
  ctx: HolderContext
  space: ReplicaSpace
  root: string
  ownerId: string
  /** The owner's side of the connection. */
  conn: Connection
  /** Blobs put through the connection (what a sweep would free). */
  received: Set<string>
  log: string[]
  until: (done: (log: string[]) => boolean) => Promise<void>
  /** Serves the next stream the owner opens; resolves when the holder is done with it. */
  serveNext: () => Promise<void>
}

let cleanups: Array<() => Promise<void>> = []

afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
  cleanups = []
})

async function holder(limits: HolderLimits = {}, fail: Parameters<typeof recordingFs>[0] = {}): Promise<Fixture> {
  const dir = await tempDir()
  cleanups.push(dir.cleanup)
  const { fs, log, until } = recordingFs(fail)
  await fsPromises.mkdir(join(dir.path, 'replicas'))
  const space = new ReplicaSpace(dir.path, limits, { fs })
  const index = createMemoryIndex()
  const ctx: HolderContext = { index, tables: holderTables(index), locks: new KeyedLocks(), log: silentLogger, space }
  const network = createMemoryNetwork()
  const transports: Transport[] = [memoryTransport({ network, clusterSecret: 'test-cluster-secret' }), memoryTransport({ network, clusterSecret: 'test-cluster-secret' })]
  cleanups.push(async () => {
    for (const t of transports) await t.close({ signal: AbortSignal.timeout(1000) }).catch(() => {})
    await space.close()
    await index.close()
  })
  let accepted!: (conn: Connection) => void
  const holderSide = new Promise<Connection>((resolve) => (accepted = resolve))
  await transports[0]!.listen('h:1', (c) => accepted(c))
  const conn = await transports[1]!.dial('h:1')
  const incoming = (await holderSide).incoming[Symbol.asyncIterator]()
  const received = new Set<string>()
  const ownerId = (await holderSide).remoteNodeId
  const serveNext = async (): Promise<void> => {
    const next = await incoming.next()
    if (next.done === true) throw new Error('the owner opened no stream')
    await serveRequest(ctx, ownerId, new Exchange(next.value), received)
  }
  return { ctx, space, root: dir.path, ownerId, conn, received, log, until, serveNext }
}

/** Where the owner's replica store keeps blob `id`. */
const pathOf = (f: Fixture, id: string): string => join(f.root, 'replicas', f.ownerId, 'blobs', id.slice(0, 2), id.slice(2, 4), id)
const replicaBlobs = (f: Fixture): Promise<string[]> => filesUnder(join(f.root, 'replicas', f.ownerId, 'blobs'))
const tmpFiles = (f: Fixture): Promise<string[]> => readdir(join(f.root, 'replicas', f.ownerId, 'tmp')).catch(() => [])
const refOf = (chunks: Blob[], manifest: Blob): RefPut => ({ refId: sha256(manifest.bytes.subarray(0, 8)), version: 1, manifestCipherId: manifest.id, cipherIds: chunks.map((c) => c.id) })
const tmpOpens = (log: string[], f: Fixture): number => log.filter((line) => line.startsWith(`open ${join(f.root, 'replicas', f.ownerId, 'tmp')}`)).length

/** Sends `blobs` on a raw `ref.store` stream (no end): for requests the test breaks off. */
async function rawRefStore(f: Fixture, blobs: Blob[]): Promise<Exchange> {
  const ex = new Exchange(await f.conn.openStream())
  await ex.send({ v: PROTOCOL_VERSION, op: 'ref.store' })
  for (const b of blobs) {
    await ex.send({ cipherId: b.id, size: b.bytes.length })
    await ex.sendBytes(b.bytes)
  }
  return ex
}

describe('holder writes', () => {
  it("writes every blob of a ref.store before it places any, and answers once they are fsynced with their directories", async () => {
    const f = await holder()
    const chunks = Array.from({ length: 6 }, () => blobOf(20_000))
    const manifest = blobOf(500)
    const serving = f.serveNext()
    const stream = await RefStream.open(f.conn)
    for (const c of [...chunks, manifest]) await stream.blob(c.id, c.bytes)
    const answer = await stream.end(refOf(chunks, manifest))
    const atAnswer = [...f.log]
    await serving
    expect(answer).toEqual({ ok: true })

    const renames = atAnswer.flatMap((line, at) => (line.startsWith('rename ') ? [{ at, from: line.split(' ')[1]!, to: line.split(' ')[2]! }] : []))
    expect(renames.map((r) => r.to).sort()).toEqual([...chunks, manifest].map((b) => pathOf(f, b.id)).sort())
    // No blob placed before the last one was written: they are placed as one group.
    const lastOpen = Math.max(...atAnswer.flatMap((line, at) => (line.startsWith(`open ${join(f.root, 'replicas', f.ownerId, 'tmp')}`) ? [at] : [])))
    const firstRename = Math.min(...renames.map((r) => r.at))
    const lastRename = Math.max(...renames.map((r) => r.at))
    expect(lastOpen).toBeLessThan(firstRename)
    // Each file durable before it was placed, each directory durable after, all before the answer.
    for (const r of renames) expect(atAnswer.slice(0, r.at)).toContain(`fsync ${r.from}`)
    const dirSyncs = atAnswer.slice(lastRename).filter((line) => line.startsWith('fsync ')).map((line) => line.slice(6))
    for (const r of renames) expect(dirSyncs).toContain(dirname(r.to))

    expect(f.space.usage(f.ownerId)).toEqual({ bytes: 6 * 20_000 + 500, refs: 1 })
    expect(await tmpFiles(f)).toEqual([])
    expect(f.received.size).toBe(0)
  })

  it('keeps nothing of a ref.store when one of its blobs does not hash to its cipherId', async () => {
    const f = await holder()
    const good = [blobOf(30_000), blobOf(30_000)]
    const bad = { id: sha256(Buffer.from('something else')), bytes: bytes(1000) }
    const serving = f.serveNext()
    const ex = await rawRefStore(f, [...good, bad])
    expect(await ex.requireHeader()).toMatchObject({ ok: false, code: 'ERR_INTEGRITY' })
    await serving
    expect(tmpOpens(f.log, f)).toBe(3)
    expect(await replicaBlobs(f)).toEqual([])
    expect(await tmpFiles(f)).toEqual([])
    expect(f.space.usage(f.ownerId).bytes).toBe(0)
    expect(f.received.size).toBe(0)
  })

  it('keeps nothing of a ref.store the owner abandons before its end', async () => {
    const f = await holder()
    const sent = [blobOf(40_000), blobOf(40_000)]
    const serving = f.serveNext()
    const ex = await rawRefStore(f, sent)
    // Both written on the holder's side (their temp files fsynced), then the owner gives up.
    await f.until((log) => log.filter((line) => line.startsWith(`fsync ${join(f.root, 'replicas', f.ownerId, 'tmp')}`)).length === 2)
    expect(f.space.usage(f.ownerId).bytes).toBe(80_000)
    ex.reset()
    await serving
    expect(await replicaBlobs(f)).toEqual([])
    expect(await tmpFiles(f)).toEqual([])
    expect(f.space.usage(f.ownerId).bytes).toBe(0)
    expect(f.received.size).toBe(0)
  })

  it("counts the blobs a ref.store is still sending against the owner's byte quota, and keeps none of a refused one", async () => {
    const f = await holder({ bytesPerOwner: 100_000 })
    const chunks = Array.from({ length: 4 }, () => blobOf(60_000))
    const manifest = blobOf(500)
    const serving = f.serveNext()
    const stream = await RefStream.open(f.conn)
    for (const c of [...chunks, manifest]) await stream.blob(c.id, c.bytes)
    await expect(stream.end(refOf(chunks, manifest))).rejects.toMatchObject({ remoteCode: 'ERR_QUOTA' })
    await serving
    // Two written (the second one past the quota), the rest refused unwritten; none kept.
    expect(tmpOpens(f.log, f)).toBe(2)
    expect(await replicaBlobs(f)).toEqual([])
    expect(await tmpFiles(f)).toEqual([])
    expect(f.space.usage(f.ownerId)).toEqual({ bytes: 0, refs: 0 })
    // The quota is free again for a store that fits.
    const small = [blobOf(40_000)]
    const smallManifest = blobOf(300)
    const again = f.serveNext()
    const retry = await RefStream.open(f.conn)
    for (const c of [...small, smallManifest]) await retry.blob(c.id, c.bytes)
    expect(await retry.end(refOf(small, smallManifest))).toEqual({ ok: true })
    await again
    expect(f.space.usage(f.ownerId)).toEqual({ bytes: 40_300, refs: 1 })
  })

  it('counts a blob once when two ref.stores bring it at the same time', async () => {
    const f = await holder()
    const shared = blobOf(50_000)
    const own = [blobOf(10_000), blobOf(20_000)]
    const manifests = [blobOf(100), blobOf(200)]
    const serving = [f.serveNext(), f.serveNext()]
    const streams = [await RefStream.open(f.conn), await RefStream.open(f.conn)]
    for (const [i, s] of streams.entries()) {
      await s.blob(shared.id, shared.bytes)
      await s.blob(own[i]!.id, own[i]!.bytes)
      await s.blob(manifests[i]!.id, manifests[i]!.bytes)
    }
    // Both have written the shared blob before either places it.
    await f.until((log) => log.filter((line) => line.startsWith(`fsync ${join(f.root, 'replicas', f.ownerId, 'tmp')}`)).length === 6)
    const answers = await Promise.all(streams.map((s, i) => s.end(refOf([shared, own[i]!], manifests[i]!))))
    await Promise.all(serving)
    expect(answers).toEqual([{ ok: true }, { ok: true }])
    expect(f.space.usage(f.ownerId)).toEqual({ bytes: 50_000 + 10_000 + 20_000 + 100 + 200, refs: 2 })
    expect((await replicaBlobs(f)).length).toBe(5)
    expect(await tmpFiles(f)).toEqual([])
  })

  it('keeps the blobs a ref.store brought when it answers ERR_MISSING, so the owner sends only what is missing', async () => {
    const f = await holder()
    const sent = blobOf(10_000)
    const absent = blobOf(10_000)
    const manifest = blobOf(100)
    const serving = f.serveNext()
    const stream = await RefStream.open(f.conn)
    await stream.blob(sent.id, sent.bytes)
    await stream.blob(absent.id, undefined)
    await stream.blob(manifest.id, manifest.bytes)
    expect(await stream.end(refOf([sent, absent], manifest))).toEqual({ ok: false, stale: false, missing: [absent.id] })
    await serving
    expect((await replicaBlobs(f)).length).toBe(2)
    expect(f.space.usage(f.ownerId)).toEqual({ bytes: 10_100, refs: 0 })
    // Unreferenced: a sweep of the connection frees them.
    await sweepReceived(f.ctx, f.ownerId, f.received)
    expect(await replicaBlobs(f)).toEqual([])
    expect(f.space.usage(f.ownerId).bytes).toBe(0)
  })

  it('counts what a failed commit placed, and sweeps it with the connection', async () => {
    let renames = 0
    const f = await holder({}, { rename: () => ++renames === 2 })
    const chunks = [blobOf(10_000), blobOf(20_000), blobOf(30_000)]
    const manifest = blobOf(100)
    const serving = f.serveNext()
    const stream = await RefStream.open(f.conn)
    for (const c of [...chunks, manifest]) await stream.blob(c.id, c.bytes)
    await expect(stream.end(refOf(chunks, manifest))).rejects.toBeDefined()
    await serving
    const placed = await replicaBlobs(f)
    expect(placed.length).toBe(1)
    const size = (await fsPromises.stat(placed[0]!)).size
    expect(f.space.usage(f.ownerId).bytes).toBe(size)
    expect(await tmpFiles(f)).toEqual([])
    await sweepReceived(f.ctx, f.ownerId, f.received)
    expect(await replicaBlobs(f)).toEqual([])
    expect(f.space.usage(f.ownerId).bytes).toBe(0)
  })

  it('commits the blobs of a long ref.store a bounded group at a time, and answers once all are durable', async () => {
    const f = await holder()
    const chunks = Array.from({ length: MAX_UNCOMMITTED_BLOBS + 40 }, () => blobOf(1000))
    const manifest = blobOf(100)
    const serving = f.serveNext()
    const stream = await RefStream.open(f.conn)
    for (const c of [...chunks, manifest]) await stream.blob(c.id, c.bytes)
    expect(await stream.end(refOf(chunks, manifest))).toEqual({ ok: true })
    await serving
    const tmp = `open ${join(f.root, 'replicas', f.ownerId, 'tmp')}`
    const firstOfSecondGroup = f.log.filter((line) => line.startsWith(tmp))[MAX_UNCOMMITTED_BLOBS]!
    const before = f.log.slice(0, f.log.indexOf(firstOfSecondGroup))
    expect(before.filter((line) => line.startsWith('rename ')).length).toBe(MAX_UNCOMMITTED_BLOBS)
    expect(f.log.filter((line) => line.startsWith('rename ')).length).toBe(chunks.length + 1)
    expect(f.space.usage(f.ownerId)).toEqual({ bytes: chunks.length * 1000 + 100, refs: 1 })
    expect(f.received.size).toBe(0)
  })

  it('keeps the groups a broken-off ref.store committed until the connection is swept, and drops the rest', async () => {
    const f = await holder()
    const sent = Array.from({ length: MAX_UNCOMMITTED_BLOBS + 3 }, () => blobOf(1000))
    const serving = f.serveNext()
    const ex = await rawRefStore(f, sent)
    const tmpSynced = (log: string[]): number => log.filter((line) => line.startsWith(`fsync ${join(f.root, 'replicas', f.ownerId, 'tmp')}`)).length
    await f.until((log) => tmpSynced(log) === sent.length)
    ex.reset()
    await serving
    expect((await replicaBlobs(f)).sort()).toEqual(sent.slice(0, MAX_UNCOMMITTED_BLOBS).map((b) => pathOf(f, b.id)).sort())
    expect(await tmpFiles(f)).toEqual([])
    expect(f.space.usage(f.ownerId).bytes).toBe(MAX_UNCOMMITTED_BLOBS * 1000)
    await sweepReceived(f.ctx, f.ownerId, f.received)
    expect(await replicaBlobs(f)).toEqual([])
    expect(f.space.usage(f.ownerId).bytes).toBe(0)
  })

  it('writes a blob.put through the same path: verified, durable before its answer, counted', async () => {
    const f = await holder()
    const blob = blobOf(25_000)
    const put = async (b: Blob): Promise<unknown> => {
      const serving = f.serveNext()
      const ex = new Exchange(await f.conn.openStream())
      await ex.send({ v: PROTOCOL_VERSION, op: 'blob.put', cipherId: b.id })
      expect(await ex.requireHeader()).toEqual({ ok: true, have: false })
      await ex.send({ size: b.bytes.length })
      await ex.sendBytes(b.bytes)
      await ex.end()
      const answer = await ex.requireHeader()
      await serving
      return answer
    }
    expect(await put({ id: sha256(Buffer.from('not these bytes')), bytes: blob.bytes })).toMatchObject({ ok: false, code: 'ERR_INTEGRITY' })
    expect(await replicaBlobs(f)).toEqual([])
    expect(f.space.usage(f.ownerId).bytes).toBe(0)
    expect(await put(blob)).toEqual({ ok: true })
    expect(f.log).toContain(`fsync ${dirname(pathOf(f, blob.id))}`)
    expect(await replicaBlobs(f)).toEqual([pathOf(f, blob.id)])
    expect(f.space.usage(f.ownerId).bytes).toBe(25_000)
    expect([...f.received]).toEqual([blob.id])
  })
})
