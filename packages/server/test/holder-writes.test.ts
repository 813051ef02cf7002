// The holder's writes of the blobs an owner sends: one request's blobs are written into the owner's replica
// store and made durable a group at a time as they come, all before the ref is committed and answered; refs
// of different keys are recorded side by side; nothing of a request that fails or is abandoned is kept, and
// the owner's byte quota counts what it is sending.
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

/** A promise the test resolves when it chooses (to hold the holder's fsyncs back). */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void
  const promise = new Promise<void>((resolve) => (open = resolve))
  return { promise, open }
}

/** The write path's file system calls in order (fsyncs when they complete), by path; `until` awaits a state of the log. */
function recordingFs(fail: { rename?: (to: string) => boolean; hold?: { fsyncsOf: (path: string) => boolean; until: Promise<void> } } = {}): { fs: BlobStoreFs; log: string[]; until: (done: (log: string[]) => boolean) => Promise<void> } {
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
    statSync: ((path: string, options?: nodeFs.StatSyncOptions) => {
      push(`stat ${path}`)
      return nodeFs.statSync(path, options)
    }) as BlobStoreFs['statSync'],
    renameSync: (from, to) => {
      if (fail.rename?.(String(to)) === true) throw Object.assign(new Error('EIO: injected failure'), { code: 'EIO' })
      nodeFs.renameSync(from, to)
      push(`rename ${String(from)} ${String(to)}`)
    },
    fsync: ((fd: number, callback: (err: NodeJS.ErrnoException | null) => void) => {
      const path = pathOf.get(fd)
      const fsync = (): void =>
        nodeFs.fsync(fd, (err) => {
          push(`fsync ${path}`)
          callback(err)
        })
      if (fail.hold === undefined || path === undefined || !fail.hold.fsyncsOf(path)) fsync()
      else void fail.hold.until.then(fsync)
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
  it('makes the blobs of a ref.store durable as they come, and answers once each one and its directory is fsynced', async () => {
    const f = await holder()
    const chunks = Array.from({ length: 6 }, () => blobOf(20_000))
    const manifest = blobOf(500)
    const serving = f.serveNext()
    const stream = await RefStream.open(f.conn)
    // The first blob is placed before the next one is sent: nothing waits for the end of the request.
    await stream.blob(chunks[0]!.id, chunks[0]!.bytes)
    await f.until((log) => log.some((line) => line.startsWith('rename ') && line.endsWith(pathOf(f, chunks[0]!.id))))
    for (const c of [...chunks.slice(1), manifest]) await stream.blob(c.id, c.bytes)
    const answer = await stream.end(refOf(chunks, manifest))
    const atAnswer = [...f.log]
    await serving
    expect(answer).toEqual({ ok: true })

    const renames = atAnswer.flatMap((line, at) => (line.startsWith('rename ') ? [{ at, from: line.split(' ')[1]!, to: line.split(' ')[2]! }] : []))
    expect(renames.map((r) => r.to).sort()).toEqual([...chunks, manifest].map((b) => pathOf(f, b.id)).sort())
    // Each file durable before it was placed, its directory durable after, all before the answer.
    for (const r of renames) {
      expect(atAnswer.slice(0, r.at)).toContain(`fsync ${r.from}`)
      expect(atAnswer.slice(r.at)).toContain(`fsync ${dirname(r.to)}`)
    }

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
    const fsyncs = gate()
    const f = await holder({}, { hold: { fsyncsOf: (path) => dirname(path).endsWith('/tmp'), until: fsyncs.promise } })
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
    // Both have written the shared blob before either places it (nothing is placed while the fsyncs are held).
    await f.until((log) => tmpOpens(log, f) === 6)
    fsyncs.open()
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

  it('keeps nothing a failed commit placed, nor what earlier groups of its request placed', async () => {
    let renames = 0
    const f = await holder({}, { rename: () => ++renames === 2 })
    const chunks = [blobOf(10_000), blobOf(20_000), blobOf(30_000)]
    const manifest = blobOf(100)
    const serving = f.serveNext()
    const stream = await RefStream.open(f.conn)
    // The first blob is placed on its own before the rest come: a group that succeeded.
    await stream.blob(chunks[0]!.id, chunks[0]!.bytes)
    await f.until(() => renames === 1)
    for (const c of [...chunks.slice(1), manifest]) await stream.blob(c.id, c.bytes)
    await expect(stream.end(refOf(chunks, manifest))).rejects.toBeDefined()
    await serving
    expect(f.log.filter((line) => line.startsWith('rename ')).length).toBeGreaterThanOrEqual(1)
    expect(await replicaBlobs(f)).toEqual([])
    expect(await tmpFiles(f)).toEqual([])
    expect(f.space.usage(f.ownerId).bytes).toBe(0)
    expect(f.received.size).toBe(0)
  })

  it('holds at most MAX_UNCOMMITTED_BLOBS of a long ref.store uncommitted, and answers once all are durable', async () => {
    const f = await holder()
    const chunks = Array.from({ length: MAX_UNCOMMITTED_BLOBS + 40 }, () => blobOf(1000))
    const manifest = blobOf(100)
    // The first two blobs' commits wait for their locks, which the test holds: nothing is placed meanwhile.
    const locks = gate()
    const held = chunks.slice(0, 2).map((c) => f.ctx.locks.run(`${f.ownerId}/${c.id}`, () => locks.promise))
    const serving = f.serveNext()
    const stream = await RefStream.open(f.conn)
    const sending = (async () => {
      for (const c of [...chunks, manifest]) await stream.blob(c.id, c.bytes)
      return stream.end(refOf(chunks, manifest))
    })()
    // The holder writes as many as it may, takes up the next one (looks for it here) and waits for a commit.
    const next = chunks[MAX_UNCOMMITTED_BLOBS]!
    await f.until((log) => log.includes(`stat ${pathOf(f, next.id)}`))
    for (let turn = 0; turn < 5; turn++) await new Promise(setImmediate)
    expect(tmpOpens(f.log, f)).toBe(MAX_UNCOMMITTED_BLOBS)
    locks.open()
    await Promise.all(held)
    expect(await sending).toEqual({ ok: true })
    await serving
    const tmpOpen = `open ${join(f.root, 'replicas', f.ownerId, 'tmp')}`
    const nextOpen = f.log.indexOf(f.log.filter((line) => line.startsWith(tmpOpen))[MAX_UNCOMMITTED_BLOBS]!)
    const firstRename = f.log.findIndex((line) => line.startsWith('rename '))
    expect(firstRename).toBeGreaterThanOrEqual(0)
    expect(firstRename).toBeLessThan(nextOpen)
    expect(f.log.filter((line) => line.startsWith('rename ')).length).toBe(chunks.length + 1)
    expect(f.space.usage(f.ownerId)).toEqual({ bytes: chunks.length * 1000 + 100, refs: 1 })
    expect(f.received.size).toBe(0)
  })

  it('keeps nothing of a long ref.store broken off after some of its groups were placed', async () => {
    const f = await holder()
    const sent = Array.from({ length: MAX_UNCOMMITTED_BLOBS + 3 }, () => blobOf(1000))
    const serving = f.serveNext()
    const ex = await rawRefStore(f, sent)
    await f.until((log) => log.filter((line) => line.startsWith('rename ')).length >= 2)
    ex.reset()
    await serving
    expect(await replicaBlobs(f)).toEqual([])
    expect(await tmpFiles(f)).toEqual([])
    expect(f.space.usage(f.ownerId).bytes).toBe(0)
    expect(f.received.size).toBe(0)
  })

  it('records the refs of different keys side by side, and no sweep frees the blobs of a ref being recorded', async () => {
    const f = await holder()
    // The index holds back the first commit it is asked for until the test lets it go.
    const first = gate()
    const transaction = f.ctx.index.transaction.bind(f.ctx.index)
    const held = gate()
    let calls = 0
    f.ctx.index.transaction = async (fn, options) => {
      if (++calls === 1) {
        held.open()
        await first.promise
      }
      return transaction(fn, options)
    }
    const stores = [0, 1].map(() => ({ chunks: [blobOf(10_000)], manifest: blobOf(100) }))
    const serving = [f.serveNext(), f.serveNext()]
    const streams = [await RefStream.open(f.conn), await RefStream.open(f.conn)]
    for (const [i, s] of streams.entries()) for (const b of [...stores[i]!.chunks, stores[i]!.manifest]) await s.blob(b.id, b.bytes)
    const firstAnswer = streams[0]!.end(refOf(stores[0]!.chunks, stores[0]!.manifest))
    await held.promise
    // The second ref is recorded while the first one's commit waits.
    expect(await streams[1]!.end(refOf(stores[1]!.chunks, stores[1]!.manifest))).toEqual({ ok: true })
    // A sweep now (the connection closing) leaves the first ref's blobs: they are pinned, about to be counted.
    await sweepReceived(f.ctx, f.ownerId, f.received)
    first.open()
    expect(await firstAnswer).toEqual({ ok: true })
    await Promise.all(serving)
    expect((await replicaBlobs(f)).sort()).toEqual(stores.flatMap((st) => [...st.chunks, st.manifest]).map((b) => pathOf(f, b.id)).sort())
    expect(f.space.usage(f.ownerId)).toEqual({ bytes: 2 * 10_100, refs: 2 })
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
