// Membership: signed peer records (only the node they describe can make them; relays cannot alter
// them; every field is checked), a cluster formed from one bootstrap address, remembered across a
// restart, and lost nodes declared after `lostAfter`.
import { generateKeyPairSync } from 'node:crypto'
import { createIdentity, memoryTransport } from '@dcas/p2p'
import { describe, expect, it } from 'vitest'
import { signerOf, signRecord, verifyRecord, type PeerRecordFields } from '../src/peer-record.js'
import { encodeHeader } from '../src/wire.js'
import { collect, until, useCluster } from './helpers.js'

const t = useCluster()
const fields = (over: Partial<PeerRecordFields> = {}): PeerRecordFields => ({ addresses: ['10.0.0.1:7420'], zone: 'rack-1', capacity: 4e12, state: 'active', startedAt: 1_000, issuedAt: 2_000, ...over })
const signer = () => signerOf(generateKeyPairSync('ed25519').privateKey)

describe('peer records', () => {
  it('verifies a record signed by the node it describes', () => {
    const s = signer()
    const record = signRecord(s, fields())
    expect(verifyRecord(JSON.parse(JSON.stringify(record)))).toEqual(record)
    expect(record.nodeId).toBe(s.nodeId)
  })

  it('refuses a record a relay altered, in any field', () => {
    const record = signRecord(signer(), fields())
    for (const change of [{ capacity: 9e15 }, { zone: 'rack-2' }, { addresses: ['10.6.6.6:1'] }, { state: 'leaving' }, { issuedAt: 3_000 }]) {
      expect(() => verifyRecord({ ...record, ...change }), JSON.stringify(change)).toThrow(expect.objectContaining({ code: 'ERR_PEER' }))
    }
  })

  it('refuses a record that claims another node id than its key hashes to', () => {
    const victim = signer()
    const forger = signer()
    const forged = signRecord({ ...forger, nodeId: victim.nodeId }, fields({ capacity: 9e15 }))
    expect(() => verifyRecord(forged)).toThrow(/does not hash to its node id/)
    expect(() => verifyRecord({ ...forged, publicKey: victim.publicKey })).toThrow(/signature does not verify/)
  })

  it('checks every field before the signature', () => {
    const s = signer()
    const bad: Array<[Partial<PeerRecordFields>, RegExp]> = [
      [{ addresses: Array.from({ length: 9 }, (_, i) => `h${i}:1`) }, /addresses/],
      [{ addresses: ['no-port'] }, /addresses/],
      [{ addresses: ['x'.repeat(300) + ':1'] }, /addresses/],
      [{ zone: 'a zone with spaces' }, /zone/],
      [{ zone: 'z'.repeat(65) }, /zone/],
      [{ capacity: -1 }, /capacity/],
      [{ capacity: 1.5 }, /capacity/],
      [{ state: 'gone' as 'active' }, /state/],
      [{ startedAt: 5_000, issuedAt: 4_000 }, /times/],
      [{ issuedAt: Date.now() + 3_600_000 }, /future/],
    ]
    for (const [change, message] of bad) expect(() => verifyRecord(signRecord(s, fields(change))), JSON.stringify(change)).toThrow(message)
    expect(() => verifyRecord('not a record')).toThrow(/not an object/)
  })
})

describe('membership', () => {
  it('forms a cluster from one bootstrap address: every node lists every other, with its zone and capacity', async () => {
    const a = await t.cluster.add('a', [], { zone: 'z-a', capacity: 1e12 })
    const others = []
    for (const name of ['b', 'c', 'd', 'e']) others.push(await t.cluster.add(name, ['a'], { zone: `z-${name}`, capacity: 2e12 }))
    const all = [a, ...others]
    await until(all, () => all.every((s) => s.peers().length === 4))
    const zoneOf = new Map(all.map((s, i) => [s.nodeId, `z-${'abcde'[i]}`]))
    for (const s of all) {
      const ids = s.peers().map((p) => p.nodeId).sort()
      expect(ids).toEqual(all.filter((o) => o !== s).map((o) => o.nodeId).sort())
      for (const p of s.peers()) expect(p).toMatchObject({ zone: zoneOf.get(p.nodeId), capacity: p.nodeId === a.nodeId ? 1e12 : 2e12 })
    }
    // Small clusters stay fully connected: each node dials the members it learnt of.
    await until(all, () => all.every((s) => s.peers().every((p) => p.connected)))
  })

  it('remembers the members across a restart and dials them again, with no bootstrap address', async () => {
    const a = await t.cluster.add('a')
    const b = await t.cluster.add('b', ['a'])
    const c = await t.cluster.add('c', ['a'])
    await until([a, b, c], () => [a, b, c].every((s) => s.peers().length === 2))
    await c.close()
    const c2 = await t.cluster.add('c', [], { root: t.cluster.roots[2]! })
    expect(c2.peers().map((p) => p.nodeId).sort()).toEqual([a.nodeId, b.nodeId].sort())
    await c2.waitForPeers(2)
  })

  it('declares a node lost once it is unseen longer than lostAfter, and returned when it is back', async () => {
    const options = { lostAfter: 600 }
    const a = await t.cluster.add('a', [], options)
    const b = await t.cluster.add('b', ['a'], options)
    await b.waitForPeers(1)
    const lost = new Promise<{ nodeId: string; lastSeen: number }>((resolve) => a.once('node:lost', resolve))
    const closedAt = Date.now()
    await b.close()
    const event = await lost
    expect(event.nodeId).toBe(b.nodeId)
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(600)
    expect(a.peers()).toEqual([expect.objectContaining({ nodeId: b.nodeId, connected: false, state: 'lost' })])
    const back = new Promise<{ nodeId: string }>((resolve) => a.once('node:returned', resolve))
    await t.cluster.add('b', ['a'], { root: t.cluster.roots[1]!, ...options })
    expect(await back).toEqual({ nodeId: b.nodeId })
    expect(a.peers()).toEqual([expect.objectContaining({ nodeId: b.nodeId, connected: true, state: 'active' })])
  })

  it('refuses a push of more records than a request may carry, and a record that does not verify', async () => {
    const a = await t.cluster.add('a')
    const identity = await createIdentity()
    const evil = memoryTransport({ network: t.cluster.network, clusterSecret: 'test-cluster-secret', nodeId: identity.nodeId })
    try {
      const conn = await evil.dial('a:1')
      const forged = signRecord({ ...signerOf(identity.privateKey) }, fields({ capacity: 9e15 }))
      const body = Buffer.from(JSON.stringify([{ ...forged, capacity: 1 }]))
      const stream = await conn.openStream()
      await stream.write(encodeHeader({ v: 1, op: 'members.push', count: 1, bodySize: body.length }))
      await stream.write(body)
      await stream.closeWrite()
      const answer = (await collect(stream)).subarray(4).toString()
      expect(JSON.parse(answer)).toEqual({ ok: true, accepted: 0 })
      expect(a.peers().every((p) => p.capacity === undefined)).toBe(true)
      const big = await conn.openStream()
      await big.write(encodeHeader({ v: 1, op: 'members.push', count: 65, bodySize: 2 }))
      // A malformed request costs the peer its connection.
      expect(await conn.closed).toBeDefined()
    } finally {
      await evil.close({ signal: AbortSignal.timeout(1000) }).catch(() => {})
    }
  })
})
