// Placement as a pure function, simulated: 1,000 nodes with mixed capacities in 10 zones, 10^6 refs of
// mixed sizes, R copies each, placed by the server's own weighted rendezvous hashing (the very function
// a node calls). Reported: balance (max ÷ mean of each node's held bytes over its weight) beside the
// balance of an ideal random placement of the same refs and weights (the floor any placement that
// hashes refs independently can reach: a node's bytes are a sum of random draws), and the bytes moved
// when nodes join or leave ÷ the ideal (the joining node's share of all bytes; what the leaving node held).
// CPU only and deterministic (refs and nodes come from fixed seeds); one round, no repetition.
import { createHash } from 'node:crypto'
import { RendezvousTable, type WeightedNode } from '@dcas/server'
import { emit, peakRssMiB, quick } from '../lib.js'

const NODES = 1_000
const ZONES = 10
const REFS = quick ? 100_000 : 1_000_000
/** Disk sizes of the nodes: a mix of 4, 8, 12 and 16 TB machines. */
const CAPACITIES = [4e12, 8e12, 12e12, 16e12]
const MiB = 1024 * 1024

/** A deterministic stream of 32-bit numbers (xorshift). */
function stream(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 2 ** 32
  }
}

const hexId = (label: string): string => createHash('sha256').update(label).digest('hex')
const node = (i: number, rnd: () => number): WeightedNode => ({ nodeId: hexId(`sim node ${i}`), zone: `zone-${i % ZONES}`, capacity: CAPACITIES[Math.floor(rnd() * CAPACITIES.length)]! })

const rnd = stream(0x5eed)
const nodes = Array.from({ length: NODES }, (_, i) => node(i, rnd))
// Ref ids are HMACs on a real node: uniform hex. Only their first 64 bits are hashed.
const refIds = Array.from({ length: REFS }, (_, i) => hexId(`sim ref ${i}`).slice(0, 16))
// Object sizes from 0.5 to 1.5 MiB.
const sizes = Float64Array.from({ length: REFS }, () => (0.5 + rnd()) * MiB)

/** Every ref placed on `table`: the node ids of its holders, as indices into `ids`, R per ref. */
function placeAll(table: RendezvousTable, replicas: number, ids: Map<string, number>): { holders: Int32Array; seconds: number } {
  const holders = new Int32Array(REFS * replicas).fill(-1)
  const local = table.ids.map((id) => ids.get(id)!)
  const start = performance.now()
  for (let r = 0; r < REFS; r++) {
    const picked = table.place(refIds[r]!, replicas)
    for (let k = 0; k < picked.length; k++) holders[r * replicas + k] = local[picked[k]!]!
  }
  return { holders, seconds: (performance.now() - start) / 1000 }
}

/** Max ÷ mean of held bytes per unit of weight, over the nodes with a weight. */
function balance(held: Float64Array, weights: Float64Array): number {
  let total = 0
  let weight = 0
  for (let i = 0; i < held.length; i++) {
    total += held[i]!
    weight += weights[i]!
  }
  let max = 0
  for (let i = 0; i < held.length; i++) if (weights[i]! > 0) max = Math.max(max, held[i]! / weights[i]! / (total / weight))
  return max
}

function heldBytes(holders: Int32Array, replicas: number, count: number): Float64Array {
  const held = new Float64Array(count)
  for (let r = 0; r < REFS; r++) for (let k = 0; k < replicas; k++) {
    const h = holders[r * replicas + k]!
    if (h >= 0) held[h] = held[h]! + sizes[r]!
  }
  return held
}

/** Bytes of copies that land on a node that did not hold them before. */
function moved(before: Int32Array, after: Int32Array, replicas: number): number {
  let bytes = 0
  for (let r = 0; r < REFS; r++) {
    for (let k = 0; k < replicas; k++) {
      const h = after[r * replicas + k]!
      let had = false
      for (let j = 0; j < replicas; j++) if (before[r * replicas + j] === h) had = true
      if (!had && h >= 0) bytes += sizes[r]!
    }
  }
  return bytes
}

/** The same refs, each copy on a node drawn at random in proportion to its weight (distinct nodes per ref): the floor of balance. */
function randomFloor(weights: Float64Array, replicas: number): number {
  const draw = stream(0xf100)
  const cumulative = new Float64Array(weights.length)
  let sum = 0
  weights.forEach((w, i) => (cumulative[i] = sum += w))
  const held = new Float64Array(weights.length)
  for (let r = 0; r < REFS; r++) {
    const taken: number[] = []
    while (taken.length < replicas) {
      const x = draw() * sum
      let lo = 0
      let hi = weights.length - 1
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (cumulative[mid]! > x) hi = mid
        else lo = mid + 1
      }
      if (!taken.includes(lo)) taken.push(lo)
    }
    for (const h of taken) held[h] = held[h]! + sizes[r]!
  }
  return balance(held, weights)
}

const name = (what: string, replicas: number): string => `placement: ${what}, R=${replicas}, ${NODES} nodes, ${REFS.toExponential(0).replace('+', '')} refs`
const ratio = (what: string, replicas: number, value: number, isCeiling = false, ceiling?: string): void =>
  emit({ name: name(what, replicas), unit: 'ratio', value, peakRssMiB: [peakRssMiB()], ...(isCeiling ? { isCeiling } : {}), ...(ceiling === undefined ? {} : { ceiling: name(ceiling, replicas) }) })

const joiners = Array.from({ length: ZONES }, (_, i) => node(NODES + i, stream(0x10 + i)))
const all = [...nodes, ...joiners]
const index = new Map(all.map((m, i) => [m.nodeId, i]))
const baseTable = new RendezvousTable(nodes)
const weightOf = (table: RendezvousTable): Float64Array => {
  const w = new Float64Array(all.length)
  table.ids.forEach((id, i) => (w[index.get(id)!] = table.weights[i]!))
  return w
}

/** Places every ref with R copies, then after joins and a leave, and reports each figure. */
function simulate(replicas: number): void {
  const base = placeAll(baseTable, replicas, index)
  const weights = weightOf(baseTable)
  const held = heldBytes(base.holders, replicas, all.length)
  const total = held.reduce((a, b) => a + b, 0)
  emit({ name: name('refs placed per second', replicas), unit: 'ops/s', value: REFS / base.seconds, peakRssMiB: [peakRssMiB()] })
  ratio('ideal random placement, max/mean held bytes per weight', replicas, randomFloor(weights.slice(0, NODES), replicas), true)
  ratio('balance, max/mean held bytes per weight', replicas, balance(held, weights), false, 'ideal random placement, max/mean held bytes per weight')

  // One node joins (a median one); then ten, one per zone: moved ÷ their share of all bytes.
  for (const count of [1, ZONES]) {
    const joined = new RendezvousTable([...nodes, ...joiners.slice(0, count)])
    const after = placeAll(joined, replicas, index)
    const w = weightOf(joined)
    const share = joiners.slice(0, count).reduce((a, m) => a + w[index.get(m.nodeId)!]!, 0) / w.reduce((a, b) => a + b, 0)
    ratio(`${count === 1 ? 'one node joins' : `${count} nodes join`}, bytes moved / ideal`, replicas, moved(base.holders, after.holders, replicas) / (share * total))
  }
  // The largest node leaves: moved ÷ what it held (all of which must move, and nothing else need).
  let largest = 0
  for (let i = 1; i < NODES; i++) if (held[i]! > held[largest]!) largest = i
  const left = new RendezvousTable(nodes.filter((_, i) => i !== largest))
  const after = placeAll(left, replicas, index)
  ratio('the fullest node leaves, bytes moved / ideal', replicas, moved(base.holders, after.holders, replicas) / held[largest]!)
}

// R = 2, the server's default.
simulate(2)
