// Liveness and hostile inputs: nothing hangs, nothing grows without bound, no damaged blob is reused.
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { memoryTransport, type Connection } from '@dcas/p2p'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MAX_REF_CHUNKS } from '../src/client.js'
import type { Server } from '../src/index.js'
import { encodeHeader } from '../src/wire.js'
import { bytes, Cluster, collect, sha256, tempDir } from './helpers.js'

let dir: { path: string; cleanup: () => Promise<void> }
let cluster: Cluster

beforeEach(async () => {
  dir = await tempDir()
  cluster = new Cluster(dir.path)
})

afterEach(async () => {
  await cluster.close()
  await dir.cleanup()
})

const read = (s: Server, key: string): Promise<Buffer> => collect(s.read(key))
const codeOf = (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => undefined,
    (err: { code?: string }) => err.code,
  )

describe('liveness', () => {
  it('ends a paused read with ERR_CLOSED when the server closes', async () => {
    const s = await cluster.add('solo')
    await s.store('k', bytes(300_000))
    const stream = s.read('k')
    await new Promise<void>((resolve) =>
      stream.once('data', () => {
        stream.pause()
        resolve()
      }),
    )
    const ended = new Promise<string | undefined>((resolve) => stream.once('error', (err: { code?: string }) => resolve(err.code)))
    await s.close()
    expect(await ended).toBe('ERR_CLOSED')
  })

  it('fails a store within the request timeout when a peer accepts requests but never answers, and still closes', async () => {
    const silent = memoryTransport({ network: cluster.network, clusterSecret: 'test-cluster-secret' })
    const held: Connection[] = []
    await silent.listen('silent:1', (conn) => {
      held.push(conn)
      void (async () => {
        for await (const _stream of conn.incoming) {
          // never answer
        }
      })()
    })
    try {
      const c = await cluster.add('c', ['silent'], { requestTimeout: 500 })
      await c.waitForPeers(1)
      expect(await codeOf(c.store('k', 'hello'))).toBe('ERR_QUORUM')
      await c.close()
    } finally {
      for (const conn of held) conn.abort()
      await silent.close({ signal: AbortSignal.timeout(1000) }).catch(() => {})
    }
  })

  it('does not dial itself again when its own address is among the bootstrap peers', async () => {
    const s = await cluster.add('self', ['self'])
    const err = await new Promise<{ code?: string }>((resolve) => s.once('dial:error', resolve))
    expect(err.code).toBe('ERR_INVALID_OPTIONS')
    expect(s.peers()).toEqual([])
    await s.store('k', 'v')
    expect((await s.delete('k')).pending).toEqual([])
  })
})

describe('hostile peers', () => {
  it('grows a holder memory with the bytes a peer sends, not with the size it announces', async () => {
    await cluster.add('a')
    const evil = memoryTransport({ network: cluster.network, clusterSecret: 'test-cluster-secret' })
    const conn = await evil.dial('a:1')
    try {
      const id = '0'.repeat(64)
      const header = encodeHeader({ v: 1, op: 'ref.put', refId: id, version: 1, manifestCipherId: id, size: 1, count: MAX_REF_CHUNKS, bodySize: 2 + MAX_REF_CHUNKS * 67 })
      const before = process.memoryUsage().arrayBuffers
      const streams = await Promise.all(Array.from({ length: 8 }, () => conn.openStream()))
      for (const stream of streams) await stream.write(Buffer.concat([header, Buffer.from('[')]))
      // the holder has read the header and the first body byte of each once it answers another request
      const probe = await conn.openStream()
      await probe.write(encodeHeader({ v: 1, op: 'blob.has', cipherIds: [id] }))
      await probe.closeWrite()
      for await (const _ of probe);
      const grown = process.memoryUsage().arrayBuffers - before
      expect(grown).toBeLessThan(16 * 1024 * 1024)
    } finally {
      conn.abort()
      await evil.close({ signal: AbortSignal.timeout(1000) }).catch(() => {})
    }
  })

  it('closes the connection of a peer that sends a malformed request, and goes on serving others', async () => {
    const a = await cluster.add('a')
    const b = await cluster.add('b', ['a'])
    await b.waitForPeers(1)
    const evil = memoryTransport({ network: cluster.network, clusterSecret: 'test-cluster-secret' })
    const conn = await evil.dial('a:1')
    const stream = await conn.openStream()
    await stream.write(encodeHeader({ v: 1, op: 'blob.put', cipherId: 'not an id' }))
    expect(await conn.closed).toBeDefined()
    await evil.close({ signal: AbortSignal.timeout(1000) }).catch(() => {})
    expect((await b.store('k', 'still served')).replicas).toEqual([a.nodeId])
  })
})

describe('local blobs', () => {
  it('rewrites a damaged local chunk when a store brings the same bytes, instead of reusing it', async () => {
    const s = await cluster.add('solo')
    const data = bytes(10_000)
    await s.store('k1', data)
    const id = sha256(data)
    const path = join(cluster.roots[0]!, 'blobs', id.slice(0, 2), id.slice(2, 4), id)
    const content = await readFile(path)
    content[0]! ^= 1
    await writeFile(path, content)
    await s.store('k2', data)
    expect(await read(s, 'k2')).toEqual(data)
    expect(await read(s, 'k1')).toEqual(data)
  })
})
