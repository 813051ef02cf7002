// Weighted rendezvous hashing as a pure function: the same answer everywhere, R distinct nodes in
// distinct zones while zones allow, shares by weight with a capped weight, minimal movement.
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { MAX_WEIGHT_RATIO, RendezvousTable, rendezvous, weightsOf, type WeightedNode } from '../src/index.js'

const id = (s: string): string => createHash('sha256').update(s).digest('hex')
const nodes = (n: number, f: (i: number) => Partial<WeightedNode> = () => ({})): WeightedNode[] => Array.from({ length: n }, (_, i) => ({ nodeId: id(`node ${i}`), ...f(i) }))
const refs = (n: number, salt = ''): string[] => Array.from({ length: n }, (_, i) => id(`ref ${salt}${i}`))

/** Copies per node over `refIds`. */
function shares(table: RendezvousTable, refIds: string[], replicas: number): Map<string, number> {
  const out = new Map(table.ids.map((nodeId) => [nodeId, 0]))
  for (const r of refIds) for (const nodeId of table.holders(r, replicas)) out.set(nodeId, out.get(nodeId)! + 1)
  return out
}

describe('rendezvous placement', () => {
  it('gives the same holders whatever the order the members are listed in', () => {
    const members = nodes(12, (i) => ({ zone: `z${i % 3}`, capacity: (i + 1) * 1e9 }))
    const shuffled = [...members].reverse()
    const a = new RendezvousTable(members)
    const b = new RendezvousTable(shuffled)
    for (const r of refs(200)) expect(b.holders(r, 3)).toEqual(a.holders(r, 3))
  })

  it('places each ref on R distinct nodes, fewer only when fewer nodes have a weight', () => {
    const table = new RendezvousTable(nodes(5, (i) => ({ capacity: i === 4 ? 0 : 1e9 })))
    for (const r of refs(100)) {
      const held = table.holders(r, 2)
      expect(new Set(held).size).toBe(2)
      expect(held).not.toContain(id('node 4'))
    }
    expect(table.holders(refs(1)[0]!, 9)).toHaveLength(4)
  })

  it('never places a ref on a node that declares no capacity for others', () => {
    const members = nodes(6, (i) => ({ capacity: i === 2 ? 0 : 1e12 }))
    const table = new RendezvousTable(members)
    for (const r of refs(300)) expect(table.holders(r, 3)).not.toContain(id('node 2'))
  })

  it('puts the copies of a ref in distinct zones while there are zones enough, then fills from the best of the rest', () => {
    const members = nodes(9, (i) => ({ zone: i < 6 ? 'big' : i < 8 ? 'mid' : 'small' }))
    const zoneOf = new Map(members.map((m) => [m.nodeId, m.zone]))
    const table = new RendezvousTable(members)
    for (const r of refs(300)) {
      expect(new Set(table.holders(r, 3).map((n) => zoneOf.get(n))).size).toBe(3)
      const four = table.holders(r, 4)
      expect(new Set(four.map((n) => zoneOf.get(n))).size).toBe(3)
      expect(new Set(four).size).toBe(4)
    }
  })

  it('gives each node a share of copies in proportion to its declared capacity', () => {
    const members = nodes(6, (i) => ({ capacity: (i % 2 === 0 ? 1 : 3) * 1e12 }))
    const table = new RendezvousTable(members)
    const counts = shares(table, refs(20_000), 1)
    const small = members.filter((_, i) => i % 2 === 0).map((m) => counts.get(m.nodeId)!)
    const large = members.filter((_, i) => i % 2 === 1).map((m) => counts.get(m.nodeId)!)
    const ratio = large.reduce((a, b) => a + b) / small.reduce((a, b) => a + b)
    expect(ratio).toBeGreaterThan(2.7)
    expect(ratio).toBeLessThan(3.3)
  })

  it(`caps a huge declared capacity at ${MAX_WEIGHT_RATIO} times the median`, () => {
    expect(weightsOf([1e12, 1e12, 1e12, 1e21])).toEqual([1, 1, 1, MAX_WEIGHT_RATIO])
    expect(weightsOf([undefined, 2e12, 0])).toEqual([1, 1, 0])
    expect(weightsOf([undefined, undefined])).toEqual([1, 1])
    const members = nodes(9, (i) => ({ capacity: i === 0 ? Number.MAX_SAFE_INTEGER : 1e12 }))
    const counts = shares(new RendezvousTable(members), refs(20_000), 1)
    const liar = counts.get(id('node 0'))! / 20_000
    // At most its capped share (4 of 12 weights), never everything.
    expect(liar).toBeLessThan((MAX_WEIGHT_RATIO / (MAX_WEIGHT_RATIO + 8)) * 1.1)
  })

  it('moves only the refs the new node wins when a node joins, and only those it held when it leaves', () => {
    const members = nodes(10, (i) => ({ zone: `z${i % 3}`, capacity: (1 + (i % 3)) * 1e12 }))
    const before = new RendezvousTable(members)
    const joined = new RendezvousTable([...members, { nodeId: id('newcomer'), zone: 'z1', capacity: 2e12 }])
    const left = new RendezvousTable(members.slice(1))
    for (const r of refs(2_000)) {
      const was = before.holders(r, 2)
      const now = joined.holders(r, 2)
      const gained = now.filter((n) => !was.includes(n))
      expect(gained.every((n) => n === id('newcomer'))).toBe(true)
      const after = left.holders(r, 2)
      if (!was.includes(id('node 0'))) expect(after.sort()).toEqual([...was].sort())
      else expect(after.filter((n) => !was.includes(n))).toHaveLength(1)
    }
  })

  it('serves as a placement policy over the members it is given', () => {
    const policy = rendezvous({ replicas: 2 })
    const members = nodes(4).map((m) => ({ ...m, connected: false }))
    const r = refs(1)[0]!
    expect(policy.holders(r, members)).toEqual(new RendezvousTable(members).holders(r, 2))
    expect(() => rendezvous({ replicas: -1 })).toThrow(RangeError)
  })
})
