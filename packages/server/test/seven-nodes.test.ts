// Seven node processes over TCP with `replicas: 2`, each told one bootstrap address: every object on
// exactly two distinct peers, bytes per node near the ideal share; a holder destroyed for good is
// replaced by repair with nothing acknowledged lost; a node added takes about its share, no object
// below two copies on the way.
import { openSync } from 'node:fs'
import { rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { dataDigest, spawnNode, type NodeHandle } from '@dcas/server/testing'
import type { PlacementStatus } from '../src/index.js'
import { filesUnder, tempDir, untilNodes } from './helpers.js'

let dir: { path: string; cleanup: () => Promise<void> }
let nodes: NodeHandle[] = []
const secret = 'seven-nodes-cluster-secret'
const SIZE = 24 * 1024
const options = { replicas: 2, lostAfter: 3_000, chunkSize: 1024 * 1024, requestTimeout: 20_000 }

beforeEach(async () => {
  dir = await tempDir()
  nodes = []
})

afterEach(async () => {
  await Promise.allSettled(nodes.map((n) => n.kill()))
  await dir.cleanup()
})

async function start(name: string, bootstrap: string[]): Promise<NodeHandle> {
  const fd = process.env.DCAS_TEST_LOGS === undefined ? undefined : openSync(join(process.env.DCAS_TEST_LOGS, `${name}.log`), 'a')
  const node = await spawnNode({ root: join(dir.path, name), clusterSecret: secret, bootstrap, ...options }, fd === undefined ? { output: 'ignore' } : { output: fd, logLevel: 'info' })
  nodes.push(node)
  return node
}

/** Bytes of replicas a node holds for others, on its disk. */
async function heldBytes(name: string): Promise<number> {
  let total = 0
  for (const f of await filesUnder(join(dir.path, name, 'replicas'))) if (/\/blobs\//.test(f)) total += (await stat(f)).size
  return total
}

const until = (check: () => Promise<boolean>): Promise<void> => untilNodes(nodes, check)

const fewest = (s: PlacementStatus): number => Math.min(...Object.keys(s.objectsByCopies).map(Number))

describe('seven nodes, two replicas', () => {
  it('places, repairs after a node is lost for good, and moves about the ideal share to a node that joins', async () => {
    const first = await start('n0', [])
    for (let i = 1; i < 7; i++) await start(`n${i}`, [first.address])
    await Promise.all(nodes.map((n) => n.waitForPeers(6, 60_000)))

    // n6 holds for the others and owns nothing: it is the one lost for good.
    const owners = nodes.slice(0, 6)
    const keys = new Map<NodeHandle, string[]>()
    await Promise.all(
      owners.map(async (owner, o) => {
        const mine: string[] = []
        for (let i = 0; i < 80; i++) {
          const key = `n${o}/object-${i}`
          const result = await owner.store(key, SIZE, key)
          expect(new Set(result.replicas).size).toBe(2)
          expect(result.replicas).not.toContain(owner.nodeId)
          mine.push(key)
        }
        keys.set(owner, mine)
      }),
    )
    const objects = owners.length * 80
    for (const owner of owners) expect(await owner.placementStatus()).toMatchObject({ target: 2, objectsByCopies: { 2: 80 }, repair: { settled: true } })

    // Balance: each node holds about its share of the replica bytes. An owner places nothing on itself: of each
    // owner's bytes (the same for all six), every other node's share is 2 of 6 candidates.
    const held = await Promise.all(nodes.map((_, i) => heldBytes(`n${i}`)))
    const total = held.reduce((a, b) => a + b, 0)
    const perOwner = total / 2 / owners.length
    const ideal = (i: number): number => (i < owners.length ? owners.length - 1 : owners.length) * (2 / 6) * perOwner
    console.log(`replica bytes per node: ${held.map((b, i) => (b / ideal(i)).toFixed(2)).join(' ')} of the ideal share`)
    held.forEach((b, i) => expect(Math.abs(b - ideal(i)) / ideal(i)).toBeLessThan(0.25))

    // n6 is destroyed and never comes back: its copies are made again on the others.
    const victim = nodes[6]!
    await victim.kill()
    await rm(join(dir.path, 'n6'), { recursive: true, force: true })
    await Promise.all(owners.map((o) => new Promise((resolve) => o.events.once('node:lost', resolve))))
    await Promise.all(owners.map((o) => o.waitForPlacement(120_000)))
    for (const owner of owners) expect(await owner.placementStatus()).toMatchObject({ objectsByCopies: { 2: 80 }, repair: { objectsLeft: 0, settled: true } })
    const afterRepair = await Promise.all(owners.map((_, i) => heldBytes(`n${i}`)))
    // Two copies of everything, on the six that are left (the owners' held bytes add up to the same total).
    expect(Math.abs(afterRepair.reduce((a, b) => a + b, 0) - total) / total).toBeLessThan(0.01)
    for (const owner of owners) {
      for (const key of keys.get(owner)!) expect(await owner.read(key)).toMatchObject({ size: SIZE, sha256: await dataDigest(SIZE, key) })
    }
    // n7 joins: only what is placed on it moves there, copied before the old copies go.
    const lowest: number[] = []
    const sample = async (): Promise<boolean> => {
      const statuses = await Promise.all(owners.map((o) => o.placementStatus()))
      lowest.push(Math.min(...statuses.map(fewest)))
      return statuses.every((s) => s.repair.settled && s.objectsByCopies[2] === 80)
    }
    const joined = Promise.all(owners.map((o) => new Promise((resolve) => o.events.once('node:joined', resolve))))
    await start('n7', [owners[3]!.address])
    await joined
    await until(sample)
    await Promise.all(owners.map((o) => o.waitForPlacement(120_000)))
    const afterJoin = await Promise.all(owners.map((_, i) => heldBytes(`n${i}`)))
    const moved = await heldBytes('n7')
    // The newcomer owns nothing: each owner places 2 of its 6 candidates' worth on it.
    const idealMove = owners.length * (2 / 6) * perOwner
    console.log(`moved to the new node: ${moved} bytes, ${(moved / idealMove).toFixed(3)} of the ideal ${Math.round(idealMove)}; fewest copies seen during the move: ${Math.min(...lowest)}`)
    expect(moved / idealMove).toBeLessThan(1.25)
    expect(moved).toBeGreaterThan(0)
    expect(Math.min(...lowest)).toBeGreaterThanOrEqual(2)
    // What moved left the others: the total is unchanged.
    expect(Math.abs(afterJoin.reduce((a, b) => a + b, 0) + moved - total) / total).toBeLessThan(0.01)
    expect(objects).toBe(480)
  }, 600_000)
})
