// A hostile admitted peer that knows the owner's public recipient (which `dcas init` prints) can
// encrypt anything to it; what it relays is believed only with the owner's MAC.
import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { encryptBytes, identityToRecipient } from '@dcas/crypto'
import { openBlobStore, openIndex } from '@dcas/store'
import { describe, expect, it } from 'vitest'
import { holderTables } from '../src/holder-state.js'
import { MANIFEST_FORMAT, MANIFEST_FORMAT_V1 } from '../src/manifest.js'
import type { Server } from '../src/index.js'
import { bytes, codeOf, readAll, useCluster } from './helpers.js'

const t = useCluster()
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** The owner's public age recipient, as anyone it printed it to knows it. */
async function recipientOf(root: string): Promise<string> {
  const file = await readFile(join(root, 'identity', 'age-identity.txt'), 'utf8')
  return identityToRecipient(file.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-'))!.trim())
}

/**
 * Holder A (first root, closed) rewrites the owner's ref `refId` to a higher version whose manifest it made:
 * naming `key`, holding `content`, encrypted to the owner; `format` picks the manifest format (a v2 one gets a made-up MAC).
 */
async function forge(owner: Server, refId: string, key: string, content: Buffer, format: string): Promise<void> {
  const recipient = await recipientOf(t.cluster.roots[1]!)
  const chunkCipher = Buffer.from(await encryptBytes(content, [recipient]))
  const body = { format, key, size: content.length, sha256: sha(content), version: 50, createdAt: Date.now() + 1e9, recipients: [recipient], metadata: {}, chunks: [{ plainId: sha(content), cipherId: sha(chunkCipher), size: content.length }], pad: '' }
  const text = format === MANIFEST_FORMAT ? `${JSON.stringify(body).slice(0, -1)},"mac":"${randomBytes(32).toString('hex')}"}` : JSON.stringify(body)
  const manifestCipher = Buffer.from(await encryptBytes(Buffer.from(text), [recipient]))
  const root = t.cluster.roots[0]!
  const store = await openBlobStore({ root: join(root, 'replicas', owner.nodeId) })
  await store.putExpected(sha(chunkCipher), chunkCipher)
  await store.putExpected(sha(manifestCipher), manifestCipher)
  await store.close()
  const index = await openIndex({ path: join(root, 'index') })
  const { refs, counts } = holderTables(index)
  await index.transaction((tx) => {
    tx.put(refs, `${owner.nodeId}/${refId}`, { version: 50, deleted: false, manifestCipherId: sha(manifestCipher), cipherIds: [sha(chunkCipher)], size: content.length, writtenAt: body.createdAt, updatedAt: Date.now() })
    for (const id of [sha(chunkCipher), sha(manifestCipher)]) tx.add(counts, `${owner.nodeId}/${id}`, 1)
  })
  await index.close()
}

/** The refIds holder A keeps for the owner. */
async function refIdsHeld(owner: Server): Promise<string[]> {
  const index = await openIndex({ path: join(t.cluster.roots[0]!, 'index') })
  const ids = [...holderTables(index).refs.entries({ prefix: `${owner.nodeId}/` })].map(([k]) => k.slice(65))
  await index.close()
  return ids
}

/** Restarts holder A and resolves once the owner has caught up with it. */
async function restartHolder(owner: Server): Promise<void> {
  const synced = new Promise<void>((resolve) => owner.on('synced', ({ nodeId }) => nodeId !== owner.nodeId && resolve()))
  await t.cluster.add('a', ['c'])
  await synced
}

describe('forged manifests', () => {
  for (const format of [MANIFEST_FORMAT, MANIFEST_FORMAT_V1]) {
    it(`do not replace an owner's object in catch-up (${format})`, async () => {
      const a = await t.cluster.add('a')
      const c = await t.cluster.add('c', ['a'])
      await c.waitForPeers(1)
      const genuine = bytes(100_000)
      await c.store('doc', genuine)
      const [refId] = await refIdsHeld(c).then(async (ids) => (await a.close(), ids))
      await forge(c, refId!, 'doc', Buffer.from('the attacker wrote this'), format)
      await restartHolder(c)
      expect((await c.stat('doc')).version).toBe(1)
      expect((await readAll(c, 'doc')).equals(genuine)).toBe(true)
    })
  }

  it('do not bring back a deleted key with content of the peer\'s choosing', async () => {
    const a = await t.cluster.add('a')
    const c = await t.cluster.add('c', ['a'])
    await c.waitForPeers(1)
    await c.store('old', bytes(1000))
    await c.delete('old')
    const [refId] = await refIdsHeld(c)
    await a.close()
    await forge(c, refId!, 'old', Buffer.from('injected'), MANIFEST_FORMAT)
    await restartHolder(c)
    expect(await c.has('old')).toBe(false)
    expect(await codeOf(readAll(c, 'old'))).toBe('ERR_NOT_FOUND')
  })

  it('are not installed by a node recovering from identity/ alone', async () => {
    const a = await t.cluster.add('a')
    const c = await t.cluster.add('c', ['a'])
    await c.waitForPeers(1)
    await c.store('doc', bytes(1000))
    const [refId] = await refIdsHeld(c)
    await a.close()
    await forge(c, refId!, 'doc', Buffer.from('the attacker wrote this'), MANIFEST_FORMAT)
    await c.close()
    const { rm } = await import('node:fs/promises')
    for (const dir of ['blobs', 'index']) await rm(join(t.cluster.roots[1]!, dir), { recursive: true })
    const restored = await t.cluster.add('c', [], { root: t.cluster.roots[1]! })
    const synced = new Promise<void>((resolve) => restored.on('synced', () => resolve()))
    await t.cluster.add('a', ['c'])
    await synced
    expect(await restored.has('doc')).toBe(false)
  })

  it('leave a key the owner deleted before a loss of all but identity/ not found, where one holder forged a newer version', async () => {
    const a = await t.cluster.add('a')
    const c = await t.cluster.add('c', ['a'])
    const b = await t.cluster.add('b', ['a', 'c'])
    await c.waitForPeers(2)
    await c.store('gone', bytes(1000))
    await c.delete('gone')
    await c.waitForSync()
    const [refId] = await refIdsHeld(c)
    await a.close()
    await forge(c, refId!, 'gone', Buffer.from('the attacker wrote this'), MANIFEST_FORMAT)
    await c.close()
    const { rm } = await import('node:fs/promises')
    for (const dir of ['blobs', 'index']) await rm(join(t.cluster.roots[1]!, dir), { recursive: true })
    // B (which dials it again) holds the owner's proven delete; A, the forged version.
    const restored = await t.cluster.add('c', [], { root: t.cluster.roots[1]! })
    await t.cluster.add('a', ['c'])
    await restored.waitForPeers(2)
    await restored.waitForSync()
    expect(b.peers().some((p) => p.nodeId === restored.nodeId && p.connected)).toBe(true)
    expect(await restored.has('gone')).toBe(false)
    expect(await codeOf(readAll(restored, 'gone'))).toBe('ERR_NOT_FOUND')
  })
})
