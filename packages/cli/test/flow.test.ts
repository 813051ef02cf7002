// The whole flow through the built `dcas` executable, as a user would run it: two nodes
// sharing a secret, each `dcas serve` a child process.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { generateData } from '@dcas/server/testing'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { InitResult, NodeStatus, ObjectInfo } from '../src/index.js'
import { dcas, filesUnder, serve, sha256, stopAll, tempDir, type ServeHandle } from './helpers.js'

const BIG = 64 * 1024 * 1024

let dir: { path: string; cleanup: () => Promise<void> }
let rootA: string
let rootB: string
let a: ServeHandle
let b: ServeHandle
let idA: string
let idB: string

async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const piece of createReadStream(path)) hash.update(piece as Buffer)
  return hash.digest('hex')
}

/** Writes `size` bytes of deterministic data to a file; resolves to their SHA-256. */
async function makeFile(path: string, size: number, seed: string): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(
    (async function* () {
      for await (const piece of generateData(size, seed)) {
        hash.update(piece)
        yield piece
      }
    })(),
    createWriteStream(path),
  )
  return hash.digest('hex')
}

const connected = (node: ServeHandle, peer: string): Promise<unknown> => node.waitFor((l) => l.msg === 'peer connected' && l.peer === peer)

beforeEach(async () => {
  dir = await tempDir()
  rootA = join(dir.path, 'a')
  rootB = join(dir.path, 'b')
  const local = ['--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--json']
  const initA = await dcas(['init', '--root', rootA, ...local])
  expect(initA.code).toBe(0)
  const initB = await dcas(['init', '--root', rootB, '--join', join(rootA, 'identity', 'cluster-secret'), ...local])
  expect(initB.code).toBe(0)
  idA = (JSON.parse(initA.stdout) as InitResult).nodeId
  idB = (JSON.parse(initB.stdout) as InitResult).nodeId
  a = await serve(rootA)
  b = await serve(rootB, ['--peer', a.api.address])
  await Promise.all([connected(a, idB), connected(b, idA)])
})

afterEach(async () => {
  await stopAll()
  await dir.cleanup()
})

// Two node processes, a dozen command processes and 64 MiB each way: on a loaded shared machine
// (every package testing at once) this takes minutes, not seconds. Nothing here asserts timing.
describe('two nodes through the dcas command line', { timeout: 240_000 }, () => {
  it('puts a 64 MiB file, gets it back byte-identical, lists, stats, removes and reports status', async () => {
    const file = join(dir.path, 'big.bin')
    const digest = await makeFile(file, BIG, 'flow-1')

    const put = await dcas(['put', '--root', rootA, 'videos/big.bin', file])
    expect(put.code).toBe(0)
    expect(put.stdout).toContain(`stored "videos/big.bin": 64.0 MiB (${BIG} bytes), sha256 ${digest}, version 1, on 1 peer`)
    expect(put.stderr).toBe('') // no progress bar off a terminal, and no warning: the peer holds a copy

    const out = join(dir.path, 'back.bin')
    const get = await dcas(['get', '--root', rootA, 'videos/big.bin', '-o', out])
    expect(get.code).toBe(0)
    expect(await fileDigest(out)).toBe(digest)

    const small = await dcas(['put', '--root', rootA, 'notes.txt', '-'], { input: 'from standard input\n' })
    expect(small.code).toBe(0)
    const cat = await dcas(['get', '--root', rootA, 'notes.txt'])
    expect(cat.stdout).toBe('from standard input\n')
    // "-o -" is standard output too, not a file named "-".
    const dash = await dcas(['get', '--root', rootA, 'notes.txt', '-o', '-'], { cwd: dir.path })
    expect(dash.stdout).toBe('from standard input\n')
    expect(await readFile(join(dir.path, '-')).then(() => true, () => false)).toBe(false)

    const ls = await dcas(['ls', '--root', rootA])
    expect(ls.stdout.trim().split('\n').map((l) => l.split(/\s+/).pop())).toEqual(['notes.txt', 'videos/big.bin'])
    const lsJson = JSON.parse((await dcas(['ls', '--root', rootA, 'videos/', '--json'])).stdout) as Array<{ key: string; size: number }>
    expect(lsJson).toEqual([expect.objectContaining({ key: 'videos/big.bin', size: BIG, sha256: digest })])

    const stat = JSON.parse((await dcas(['stat', '--root', rootA, 'videos/big.bin', '--json'])).stdout) as ObjectInfo
    expect(stat).toMatchObject({ key: 'videos/big.bin', size: BIG, sha256: digest, version: 1, chunks: 64, replicas: [idB] })

    const rmSmall = await dcas(['rm', '--root', rootA, 'notes.txt'])
    expect(rmSmall.code).toBe(0)
    expect(rmSmall.stdout).toContain('deleted "notes.txt" on this node and 1 peer')
    const gone = await dcas(['get', '--root', rootA, 'notes.txt'])
    expect(gone.code).toBe(5)
    expect(gone.stderr).toContain('was deleted')
    expect(gone.stderr).toContain('dcas ls')

    const status = JSON.parse((await dcas(['status', '--root', rootA, '--json'])).stdout) as NodeStatus
    expect(status.nodeId).toBe(idA)
    expect(status.peers).toEqual([expect.objectContaining({ nodeId: idB, connected: true })])
    expect(status.objects).toMatchObject({ objects: 1, bytes: BIG, replicated: 1, lagging: 0, unreplicated: 0 })
    expect(status.disk.blobs).toBeGreaterThanOrEqual(BIG)
    const text = await dcas(['status', '--root', rootB])
    expect(text.stdout).toContain('peers    1 known, 1 connected')
    expect(text.stdout).toMatch(/replicas for peers (6\d\.\d|7\d\.\d) MiB/)
  })

  it('gets a file back from the peer after its node is killed and loses its disk', async () => {
    const file = join(dir.path, 'big.bin')
    const digest = await makeFile(file, 16 * 1024 * 1024, 'flow-2')
    expect((await dcas(['put', '--root', rootA, 'big.bin', file])).code).toBe(0)

    await a.stop('SIGKILL')
    for (const lost of ['blobs', 'index']) await rm(join(rootA, lost), { recursive: true, force: true })
    // The address changes (port 0): this time A dials B.
    a = await serve(rootA, ['--peer', b.api.address])
    await connected(a, idB)

    const out = join(dir.path, 'recovered.bin')
    const get = await dcas(['get', '--root', rootA, 'big.bin', '-o', out])
    expect(get.stderr).toBe('')
    expect(get.code).toBe(0)
    expect(await fileDigest(out)).toBe(digest)
    const status = JSON.parse((await dcas(['status', '--root', rootA, '--json'])).stdout) as NodeStatus
    expect(status.healed).toBeGreaterThanOrEqual(16)

    // The local copy is whole again: a scrub finds nothing to heal.
    const scrub = await dcas(['scrub', '--root', rootA])
    expect(scrub.code).toBe(0)
    expect(scrub.stdout).toContain('scrubbed 1 object (16.0 MiB verified): 0 chunks healed from peers, 0 failed')
  })

  it('scrub heals a chunk file that rotted on disk, from the peer', async () => {
    const file = join(dir.path, 'small.bin')
    await makeFile(file, 3 * 1024 * 1024, 'flow-3')
    expect((await dcas(['put', '--root', rootA, 'small.bin', file])).code).toBe(0)
    const chunks: string[] = []
    for (const f of await filesUnder(join(rootA, 'blobs'))) if ((await stat(f)).size === 1024 * 1024) chunks.push(f)
    expect(chunks).toHaveLength(3)
    const victim = chunks[1]!
    const bytes = await readFile(victim)
    bytes[0]! ^= 0xff
    await writeFile(victim, bytes)

    const scrub = await dcas(['scrub', '--root', rootA, '--json'])
    expect(scrub.code).toBe(0)
    expect(JSON.parse(scrub.stdout)).toEqual({ objects: 1, bytes: 3 * 1024 * 1024, healed: 1, failed: [], audited: 1, lostCopies: [] })
    expect(sha256(await readFile(victim))).toBe(victim.split('/').pop())
  })
})

describe('a node leaving for good', { timeout: 240_000 }, () => {
  it('dcas drain moves the replicas it holds to the nodes that stay, then stops it', async () => {
    const rootC = join(dir.path, 'c')
    const initC = await dcas(['init', '--root', rootC, '--join', join(rootA, 'identity', 'cluster-secret'), '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--json'])
    const idC = (JSON.parse(initC.stdout) as InitResult).nodeId
    // C is told of A only: it learns of B from A.
    const c = await serve(rootC, ['--peer', a.api.address])
    await Promise.all([connected(c, idA), connected(c, idB)])
    const put = await dcas(['put', '--root', rootA, 'notes.txt', '-'], { input: 'kept on the nodes that stay' })
    expect(put.stdout).toContain('on 2 peers')
    expect((await filesUnder(join(rootC, 'replicas', idA, 'blobs'))).length).toBe(2)

    const drain = await dcas(['drain', '--root', rootC])
    expect(drain.code).toBe(0)
    expect(drain.stdout).toContain('drained: the 1 replica held for other nodes are on other nodes now; the node stops')
    expect(await c.exited).toEqual({ code: 0, signal: null })
    expect(await filesUnder(join(rootC, 'replicas', idA, 'blobs'))).toEqual([])

    const status = JSON.parse((await dcas(['status', '--root', rootA, '--json'])).stdout) as NodeStatus
    expect(status.peers.find((p) => p.nodeId === idC)).toMatchObject({ state: 'leaving' })
    expect(status.replication).toEqual({ target: 1, objectsByCopies: { 1: 1 }, repair: { objectsLeft: 0, bytesLeft: 0, settled: true } })
    expect((await dcas(['status', '--root', rootA])).stdout).toContain('placement 1 copy per object (1 with 1); settled')
    expect((await dcas(['get', '--root', rootA, 'notes.txt'])).stdout).toBe('kept on the nodes that stay')
  })
})
