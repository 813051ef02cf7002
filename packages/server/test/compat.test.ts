// Data directories written by earlier releases open and read back: the on-disk format is kept.
import { execFile } from 'node:child_process'
import { cp, mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { memoryTransport } from '@dcas/p2p'
import { describe, expect, it } from 'vitest'
import { createServer, type Server } from '../src/index.js'
import { codeOf, readAll, useCluster } from './helpers.js'

const t = useCluster()
const FIXTURE = join(import.meta.dirname, 'fixtures', 'datadir-v1.tar.gz')
const ids = { a: 'a'.repeat(64), b: 'b'.repeat(64) }
/** The bytes the fixture's writer stored (see fixtures/README.md). */
const body = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 255))

async function open(name: 'a' | 'b', dial: string[] = [], root = join(t.dir, name)): Promise<Server> {
  const server = createServer({
    root,
    listen: `${name}:1`,
    bootstrap: dial,
    chunkSize: 64 * 1024,
    transport: memoryTransport({ network: t.cluster.network, clusterSecret: 'fixture-secret', nodeId: ids[name] }),
  })
  t.cluster.servers.push(server)
  await server.start()
  return server
}

describe('a data directory written before the server was split into modules', () => {
  it('opens and reads back every object, and a deleted key stays deleted', async () => {
    await promisify(execFile)('tar', ['-xzf', FIXTURE, '-C', t.dir])
    const a = await open('a')
    const b = await open('b', ['a:1'])
    await Promise.all([a.waitForPeers(1), b.waitForPeers(1)])
    expect(String(await readAll(a, 'small'))).toBe('hello from before the split')
    expect((await readAll(a, 'big')).equals(body(300_000, 1))).toBe(true)
    expect((await readAll(a, 'twice')).equals(body(90_000, 3))).toBe(true)
    expect(await codeOf(readAll(a, 'gone'))).toBe('ERR_NOT_FOUND')
    expect((await readAll(b, 'b-own')).equals(body(130_000, 4))).toBe(true)
    expect((await a.stat('twice')).version).toBe(2)
  })

  it('gets an object back from the replicas its peer kept in the old format after the local copy is lost', async () => {
    await promisify(execFile)('tar', ['-xzf', FIXTURE, '-C', t.dir])
    await rm(join(t.dir, 'a', 'blobs'), { recursive: true })
    const a = await open('a')
    const b = await open('b', ['a:1'])
    await Promise.all([a.waitForPeers(1), b.waitForPeers(1)])
    expect((await readAll(a, 'big')).equals(body(300_000, 1))).toBe(true)
    expect(String(await readAll(a, 'small'))).toBe('hello from before the split')
  })
})

describe('after the upgrade', () => {
  it("seals the old manifests with the owner's MAC and brings them to peers, so identity/ alone gets the objects back", async () => {
    await promisify(execFile)('tar', ['-xzf', FIXTURE, '-C', t.dir])
    const a = await open('a')
    const b = await open('b', ['a:1'])
    await Promise.all([a.waitForPeers(1), b.waitForPeers(1)])
    await a.waitForSync()
    await a.close()
    // A new data directory holding only A's identity/.
    const restored = join(t.dir, 'restored')
    await mkdir(restored)
    await cp(join(t.dir, 'a', 'identity'), join(restored, 'identity'), { recursive: true })
    // B dials A's address again on its own; A dialling B too would race two connections, one replaced.
    const a2 = await open('a', [], restored)
    await a2.waitForPeers(1)
    await a2.waitForSync()
    expect((await a2.list()).map((e) => e.key).sort()).toEqual(['big', 'small', 'twice'])
    expect((await readAll(a2, 'big')).equals(body(300_000, 1))).toBe(true)
    expect((await readAll(a2, 'twice')).equals(body(90_000, 3))).toBe(true)
  })
})
