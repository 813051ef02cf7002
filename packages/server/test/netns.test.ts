// Nodes in network namespaces of their own (one address each, on a bridge), as real machines would
// be: a cluster formed from one bootstrap address, then one namespace cut off by firewall rules (its
// packets dropped, as a partition does) and let back in. Needs root and iproute2 (`ip`); uses nftables,
// else iptables, else takes the namespace's link down. Skipped only without root or `ip`.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dataDigest, spawnNode, type NodeHandle } from '@dcas/server/testing'
import type { PeerInfo } from '../src/index.js'
import { tempDir, untilNodes } from './helpers.js'

const has = (cmd: string, args: string[]): boolean => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0
const runnable = process.getuid?.() === 0 && has('ip', ['-V'])
const firewall = has('nft', ['--version']) ? 'nft' : has('iptables', ['--version']) ? 'iptables' : 'link'

const N = 4
const tag = `dcas${process.pid % 100_000}`
const hub = `${tag}-hub`
const ns = (i: number): string => `${tag}-n${i}`
const subnet = `10.${200 + (process.pid % 50)}.${process.pid % 250}`
const addressOf = (i: number): string => `${subnet}.${i + 1}`

function sh(cmd: string, ...args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`)
}
const inNs = (name: string, ...args: string[]): void => sh('ip', 'netns', 'exec', name, ...args)

function setUp(): void {
  sh('ip', 'netns', 'add', hub)
  inNs(hub, 'ip', 'link', 'add', 'br0', 'type', 'bridge')
  inNs(hub, 'ip', 'link', 'set', 'br0', 'up')
  for (let i = 0; i < N; i++) {
    sh('ip', 'netns', 'add', ns(i))
    sh('ip', 'link', 'add', `${tag}a${i}`, 'type', 'veth', 'peer', 'name', `${tag}b${i}`)
    sh('ip', 'link', 'set', `${tag}a${i}`, 'netns', ns(i))
    sh('ip', 'link', 'set', `${tag}b${i}`, 'netns', hub)
    inNs(hub, 'ip', 'link', 'set', `${tag}b${i}`, 'master', 'br0')
    inNs(hub, 'ip', 'link', 'set', `${tag}b${i}`, 'up')
    inNs(ns(i), 'ip', 'link', 'set', 'lo', 'up')
    inNs(ns(i), 'ip', 'addr', 'add', `${addressOf(i)}/24`, 'dev', `${tag}a${i}`)
    inNs(ns(i), 'ip', 'link', 'set', `${tag}a${i}`, 'up')
  }
}

function tearDown(): void {
  for (const name of [hub, ...Array.from({ length: N }, (_, i) => ns(i))]) spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' })
}

/** Cuts namespace `i` off: every packet in or out of its link dropped (loopback spared). */
function partition(i: number): void {
  const link = `${tag}a${i}`
  if (firewall === 'nft') {
    inNs(ns(i), 'nft', 'add', 'table', 'inet', 'dcas')
    inNs(ns(i), 'nft', 'add', 'chain', 'inet', 'dcas', 'in', '{ type filter hook input priority 0 ; policy accept ; }')
    inNs(ns(i), 'nft', 'add', 'chain', 'inet', 'dcas', 'out', '{ type filter hook output priority 0 ; policy accept ; }')
    inNs(ns(i), 'nft', 'add', 'rule', 'inet', 'dcas', 'in', 'iifname', link, 'drop')
    inNs(ns(i), 'nft', 'add', 'rule', 'inet', 'dcas', 'out', 'oifname', link, 'drop')
  } else if (firewall === 'iptables') {
    inNs(ns(i), 'iptables', '-A', 'INPUT', '-i', link, '-j', 'DROP')
    inNs(ns(i), 'iptables', '-A', 'OUTPUT', '-o', link, '-j', 'DROP')
  } else {
    inNs(hub, 'ip', 'link', 'set', `${tag}b${i}`, 'down')
  }
}

function heal(i: number): void {
  if (firewall === 'nft') inNs(ns(i), 'nft', 'delete', 'table', 'inet', 'dcas')
  else if (firewall === 'iptables') inNs(ns(i), 'iptables', '-F')
  else inNs(hub, 'ip', 'link', 'set', `${tag}b${i}`, 'up')
}

const options = { clusterSecret: 'netns-cluster-secret', replicas: 2, lostAfter: 4_000, requestTimeout: 10_000 }

describe.skipIf(!runnable)('nodes in network namespaces of their own', () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  const nodes: NodeHandle[] = []

  beforeAll(async () => {
    tearDown()
    setUp()
    dir = await tempDir()
  })

  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.kill()))
    tearDown()
    await dir?.cleanup()
  })

  const until = (check: () => Promise<boolean>): Promise<void> => untilNodes(nodes, check)

  it('forms a cluster from one bootstrap address and survives a partition of one namespace', async () => {
    for (let i = 0; i < N; i++) {
      const node = await spawnNode(
        { ...options, root: join(dir.path, `n${i}`), listen: `${addressOf(i)}:7000`, bootstrap: i === 0 ? [] : [`${addressOf(0)}:7000`] },
        { output: 'ignore', wrapper: ['ip', 'netns', 'exec', ns(i)] },
      )
      nodes.push(node)
    }
    const everyone = async (): Promise<PeerInfo[][]> => Promise.all(nodes.map((n) => n.peers()))
    await until(async () => (await everyone()).every((peers) => peers.length === N - 1 && peers.every((p) => p.connected)))
    // Each learnt the others' addresses from their signed records: one per namespace.
    for (const [i, peers] of (await everyone()).entries()) {
      expect(peers.map((p) => p.address).sort()).toEqual(nodes.map((_, j) => `${addressOf(j)}:7000`).filter((_, j) => j !== i).sort())
    }

    const owner = nodes[1]!
    const cut = nodes[3]!
    const size = 40_000
    for (let k = 0; k < 8; k++) expect((await owner.store(`before/${k}`, size, `before/${k}`)).replicas).toHaveLength(2)

    // The partition: n3's namespace drops every packet. The others see it lost and copy what it held.
    const lost = new Promise((resolve) => owner.events.once('node:lost', resolve))
    partition(3)
    await lost
    await owner.waitForPlacement(120_000)
    expect(await owner.placementStatus()).toMatchObject({ objectsByCopies: { 2: 8 }, repair: { settled: true } })
    for (let k = 0; k < 4; k++) expect((await owner.store(`during/${k}`, size, `during/${k}`)).replicas).not.toContain(cut.nodeId)
    // Alone, n3 reaches no holder: its stores fail and store nothing.
    await expect(cut.store('alone', size, 'alone')).rejects.toMatchObject({ code: 'ERR_QUORUM', details: expect.objectContaining({ reachable: 0, committed: false }) as unknown })

    // Healed: n3 comes back, counts again, and the copies made in its stead are released.
    const returned = new Promise((resolve) => owner.events.once('node:returned', resolve))
    heal(3)
    await returned
    await until(async () => (await owner.placementStatus()).repair.settled && (await owner.peers()).every((p) => p.connected && p.state === 'active'))
    await owner.waitForPlacement(120_000)
    expect(await owner.placementStatus()).toMatchObject({ objectsByCopies: { 2: 12 }, repair: { objectsLeft: 0, settled: true } })
    for (const key of [...Array.from({ length: 8 }, (_, k) => `before/${k}`), ...Array.from({ length: 4 }, (_, k) => `during/${k}`)]) {
      expect(await owner.read(key)).toMatchObject({ size, sha256: await dataDigest(size, key) })
    }
  }, 240_000)
})
