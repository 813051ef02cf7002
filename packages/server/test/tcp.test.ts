// Integration over the real TCP + TLS transport, each node a child process with its own data directory.
import { watch } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { NODE_FLAGS } from '@dcas/server'
import { dataDigest, spawnNode, type NodeHandle } from '@dcas/server/testing'
import { filesUnder, foundUnder, replicaFiles, sha256, tempDir } from './helpers.js'

let dir: { path: string; cleanup: () => Promise<void> }
let nodes: NodeHandle[] = []
const secret = 'tcp-test-cluster-secret'

beforeEach(async () => {
  dir = await tempDir()
  nodes = []
})

afterEach(async () => {
  await Promise.allSettled(nodes.map((n) => n.kill()))
  await dir.cleanup()
})

async function start(name: string, bootstrap: NodeHandle[] = [], extra: { clusterSecret?: string; writeQuorum?: number } = {}): Promise<NodeHandle> {
  const node = await spawnNode({ root: join(dir.path, name), clusterSecret: secret, bootstrap: bootstrap.map((n) => n.address), ...extra })
  nodes.push(node)
  return node
}

/** The original topology: B dials A, C dials A and B. */
async function triangle(): Promise<[NodeHandle, NodeHandle, NodeHandle]> {
  const a = await start('a')
  const b = await start('b', [a])
  const c = await start('c', [a, b])
  await Promise.all([a.waitForPeers(2), b.waitForPeers(2), c.waitForPeers(2)])
  return [a, b, c]
}

/** Every blob file under `root` (own and replicas) hashes to its name, and no temp file is left. */
async function assertNoPartialBlobs(root: string): Promise<void> {
  for (const f of await filesUnder(root)) {
    if (f.includes('/blobs/')) expect(sha256(await readFile(f)), f).toBe(basename(f))
  }
}

describe('over TCP', () => {
  it('stores on C and reads back on C in the original topology, with peers holding only ciphertext', async () => {
    const [a, b, c] = await triangle()
    const canary = 'TCP-CANARY-5d1e-must-stay-on-its-owner'
    const result = await c.storeText('item_0', `big conten0 ${canary}`)
    expect(result.replicas.sort()).toEqual([a.nodeId, b.nodeId].sort())
    const size = 5 * 1024 * 1024 + 7
    const stored = await c.store('item_big', size, 'tcp-1')
    expect(stored.replicas).toHaveLength(2)
    expect(await c.read('item_big')).toMatchObject({ size, sha256: await dataDigest(size, 'tcp-1') })
    expect(await foundUnder(join(dir.path, 'a'), Buffer.from(canary))).toEqual([])
    expect(await foundUnder(join(dir.path, 'b'), Buffer.from(canary))).toEqual([])
    expect((await replicaFiles(join(dir.path, 'a'), c.nodeId)).length).toBeGreaterThan(0)
  })

  it('never admits a node with another cluster secret', async () => {
    const a = await start('a')
    const stranger = await start('stranger', [a], { clusterSecret: 'not the secret' })
    const b = await start('b', [a])
    await a.waitForPeers(1)
    const result = await a.storeText('k', 'v')
    expect(result.replicas).toEqual([b.nodeId])
    expect((await a.peers()).map((p) => p.nodeId)).not.toContain(stranger.nodeId)
    expect(await filesUnder(join(dir.path, 'stranger', 'replicas'))).toEqual([])
  })

  it('fails a store, or reports fewer replicas, when a peer is killed mid-store; never keeps a partial blob; a retry is idempotent', async () => {
    const [a, b, c] = await triangle()
    const size = 48 * 1024 * 1024
    // Kill B as soon as it starts receiving C's replicas.
    const receiving = new Promise<void>((resolve) => {
      const watcher = watch(join(dir.path, 'b', 'replicas'), () => {
        watcher.close()
        resolve()
      })
    })
    const storing = c.store('victim', size, 'kill-1').then(
      (r) => ({ ok: true as const, replicas: r.replicas }),
      (err: { code?: string; details?: { replicas: string[] } }) => ({ ok: false as const, code: err.code, replicas: err.details?.replicas ?? [] }),
    )
    await receiving
    await b.kill('SIGKILL')
    const outcome = await storing
    expect(outcome.replicas).not.toContain(b.nodeId)
    if (!outcome.ok) expect(outcome.code).toBe('ERR_QUORUM')
    for (const name of ['a', 'b', 'c']) await assertNoPartialBlobs(join(dir.path, name))
    // The retry stores the same ciphertext: A already holds every chunk.
    const heldBefore = (await replicaFiles(join(dir.path, 'a'), c.nodeId)).map((f) => basename(f)).sort()
    const retry = await c.store('victim', size, 'kill-1').catch((err: { details?: { replicas: string[] } }) => ({ replicas: err.details?.replicas ?? [] }))
    expect(retry.replicas).toEqual([a.nodeId])
    const heldAfter = (await replicaFiles(join(dir.path, 'a'), c.nodeId)).map((f) => basename(f)).sort()
    // same chunks; only the new version's manifest is new, and the old manifest is freed
    expect(heldAfter.length).toBe(heldBefore.length)
    expect(await c.read('victim')).toMatchObject({ size, sha256: await dataDigest(size, 'kill-1') })
  })

  it('keeps each node within bounded memory while a 256 MiB object is stored with two replicas and read back', async () => {
    const [a, b, c] = await triangle()
    const size = 256 * 1024 * 1024
    await c.store('huge', size, 'rss-1')
    expect(await c.read('huge')).toMatchObject({ size, sha256: await dataDigest(size, 'rss-1') })
    const usage = await Promise.all([a, b, c].map((n) => n.usage()))
    const peakMiB = usage.map((u) => Math.round(u.maxRss / 2 ** 20))
    console.log(`peak RSS per node for a 256 MiB object (A, B, C): ${peakMiB.join(', ')} MiB`)
    for (const p of peakMiB) expect(p).toBeLessThan(200)
  })

  it('passes options JSON cannot hold, such as an unlimited repair rate', async () => {
    const node = await spawnNode({ root: join(dir.path, 'unlimited'), clusterSecret: secret, repairRate: Infinity })
    nodes.push(node)
    expect(node.address).toMatch(/^127\.0\.0\.1:\d+$/)
  })

  it.runIf(process.platform === 'linux')('starts the child with the V8 flags a dcas process runs with, before the caller\'s own', async () => {
    const node = await spawnNode({ root: join(dir.path, 'flags'), clusterSecret: secret }, { execArgv: ['--stack-trace-limit=20'] })
    nodes.push(node)
    const argv = (await readFile(`/proc/${node.pid}/cmdline`, 'utf8')).split('\0')
    expect(NODE_FLAGS).toContain('--initial-old-space-size=64')
    for (const flag of NODE_FLAGS) expect(argv).toContain(flag)
    expect(argv.indexOf('--stack-trace-limit=20')).toBeGreaterThan(Math.max(...NODE_FLAGS.map((flag) => argv.indexOf(flag))))
  })
})
