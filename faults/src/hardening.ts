// The hardening findings as adversarial cases, against C and against a second owner D (holders A,
// B and H, write quorum 1): manifests H made itself (encrypted to the owner's public recipient, with
// no MAC or a made-up one) offered in catch-up and in recovery after a local loss must never replace,
// revive or free anything; a listing without end must end and keep the owner's memory flat; a holder
// that acknowledges each blob just under the request timeout must neither slow a store down nor hold
// back a delete; an owner that stores without end meets the holder's quotas; holders learn neither an
// object's size nor its write time, nor its key's length from its manifest; a holder that drops what it
// acknowledged, or makes up its proofs, is found out by the owner's audit.
import { createHash, randomBytes } from 'node:crypto'
import { rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { encryptBytes, identityToRecipient } from '@dcas/crypto'
import type { ListEntry } from '@dcas/server'
import type { NodeHandle } from '@dcas/server/testing'
import { healthy, reconnected, REQUEST_TIMEOUT, type Env } from './adversarial-env.js'
import { filesUnder, identitiesOf, ownBlobFiles, ownManifestIn } from './disk.js'
import { HostilePeer, type ListMode, type RefSeen } from './hostile.js'

const KiB = 1024
const MiB = 1024 * KiB
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err))
const codeOf = (err: unknown): string | undefined => (err as { code?: string } | undefined)?.code
const mib = (bytes: number): string => (bytes / MiB).toFixed(1)
const blobPath = (root: string, id: string): string => join(root, 'blobs', id.slice(0, 2), id.slice(2, 4), id)

/** What C lets each other owner hold: H stores into it without end in one case. */
export const HOLDER_LIMITS = { bytesPerOwner: 8 * MiB, refsPerOwner: 100 }

/** How long an owner's catch-up with a peer that lists without end may take before it counts as endless. */
const ENDLESS_LIMIT_MS = 60_000

/** How long D's delete may take while a transfer to a slow holder goes on before it counts as stuck (any more than 2 request timeouts fails). */
const DELETE_LIMIT_MS = 60_000

/** Runs the cases; C's first, then D's. */
export async function hardening(env: Env): Promise<void> {
  await reconnected(env, 'hardening cases')
  await metadata(env)
  await forgedManifests(env)
  await endlessListings(env)
  await quotas(env)
  const hd = new HostilePeer(env.h.identity)
  try {
    let d = await ownerD(env, hd)
    await slowHolder(env, d, hd)
    await audits(env, d, hd)
    d = await forgedAfterLoss(env, d, hd)
    await healthyD(env, d, 'recovery after local loss')
  } finally {
    await hd.disconnect().catch(() => {})
  }
}

// ---- helpers -----------------------------------------------------------------

/** The owner's public age recipient (anyone it was ever printed to knows it), from its identity file. */
async function recipientOf(root: string): Promise<string> {
  const [identity] = await identitiesOf(root)
  return identityToRecipient(identity!)
}

/** The size a manifest is padded to: a power of two from 1 KiB to 1 MiB, then a multiple of 1 MiB. */
function paddedSize(bytes: number): number {
  if (bytes <= KiB) return KiB
  if (bytes <= MiB) return 2 ** Math.ceil(Math.log2(bytes))
  return Math.ceil(bytes / MiB) * MiB
}

/** `p`'s value, or `timeout` after `ms`. */
async function bounded<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Stores `key` on `owner` and finds the ref the hostile peer `peer` was sent for it, as H would: the
 * refs since (ref.put or ref.store), at the store's version, of a refId it had not seen before (a new key's).
 */
async function storeSeen(env: Env, owner: NodeHandle, peer: HostilePeer, key: string, size: number): Promise<(RefSeen & { sha256: string }) | undefined> {
  const known = new Set(peer.refPuts.map((r) => r.refId))
  const result = await owner.store(key, size, `adv-hardening-${key}-${env.rng.hex()}`)
  const fresh = (): RefSeen[] => [...new Map(peer.refPuts.filter((r) => !known.has(r.refId) && r.version === result.version).map((r) => [r.refId, r])).values()]
  let refs = fresh()
  if (refs.length === 0) {
    await owner.waitForSync()
    refs = fresh()
  }
  if (refs.length !== 1) {
    env.fail('set-up', `the hostile peer was sent ${refs.length} new refs for ${key}, not 1`)
    return undefined
  }
  return { ...refs[0]!, sha256: result.sha256 }
}

type ManifestFormat = 'dcas-manifest-v1' | 'dcas-manifest-v2'

/**
 * H's own manifest for `key` at `version`: well-formed in `format` (a v2 one padded, with a made-up MAC),
 * naming one chunk of H's choosing, chunk and manifest encrypted to the owner's `recipient` and held by
 * `peer`, written "tomorrow" (were it believed, it would win on time too). Resolves to its cipherId.
 */
async function forge(peer: HostilePeer, recipient: string, key: string, version: number, format: ManifestFormat): Promise<string> {
  const content = Buffer.from(`written by the hostile peer, not by the owner (${key})`)
  const chunkCipher = Buffer.from(await encryptBytes(content, [recipient]))
  const chunk = { plainId: sha256(content), cipherId: sha256(chunkCipher), size: content.length }
  const head = { format, key, size: content.length, sha256: sha256(content), version, createdAt: Date.now() + 86_400_000, recipients: [recipient] }
  let text: string
  if (format === 'dcas-manifest-v1') text = JSON.stringify({ ...head, chunks: [chunk] })
  else {
    const canonical = { ...head, metadata: {}, chunks: [chunk], pad: '' }
    // The MAC takes the closing brace's place: `,"mac":"<64 hex>"}`.
    const unpadded = Buffer.byteLength(JSON.stringify(canonical)) + ',"mac":""}'.length + 64 - 1
    canonical.pad = ' '.repeat(paddedSize(unpadded) - unpadded)
    text = `${JSON.stringify(canonical).slice(0, -1)},"mac":"${randomBytes(32).toString('hex')}"}`
  }
  const manifestCipher = Buffer.from(await encryptBytes(Buffer.from(text), [recipient]))
  peer.blobs.set(chunk.cipherId, chunkCipher)
  peer.blobs.set(sha256(manifestCipher), manifestCipher)
  return sha256(manifestCipher)
}

/** The blob files of an owner's live versions (`live`, as its list gives them): each one's manifest and chunks. */
async function liveBlobFiles(root: string, live: ListEntry[]): Promise<string[]> {
  const wanted = new Set(live.map((e) => `${e.key}\u0000${e.version}`))
  const files: string[] = []
  for (const f of await ownBlobFiles(root)) {
    const m = await ownManifestIn(f)
    if (m === undefined || !wanted.has(`${m.key}\u0000${m.version}`)) continue
    files.push(f, ...m.chunks.map((c) => blobPath(root, c.plainId)))
  }
  return [...new Set(files)]
}

/** Files of `files` that are gone. */
async function missing(files: string[]): Promise<string[]> {
  const gone: string[] = []
  for (const f of files) if (!(await stat(f).then(() => true, () => false))) gone.push(f)
  return gone
}

/** Bytes of every file under `dir`. */
async function bytesUnder(dir: string): Promise<number> {
  let total = 0
  for (const f of await filesUnder(dir)) total += (await stat(f).catch(() => ({ size: 0 }))).size
  return total
}

/** Whether an owner's keys under `adv/` are exactly as before: none lost, none changed, none added. */
function compareKeys(env: Env, what: string, before: ListEntry[], after: ListEntry[]): void {
  const now = new Map(after.map((e) => [e.key, e]))
  for (const e of before) {
    const n = now.get(e.key)
    if (n === undefined) env.fail(what, `the owner lost ${e.key}`)
    else if (n.version !== e.version || n.sha256 !== e.sha256) env.fail(what, `the owner's ${e.key} changed from v${e.version} to v${n.version}${n.sha256 === e.sha256 ? '' : ', other bytes'}`)
  }
  const had = new Set(before.map((e) => e.key))
  for (const e of after) if (!had.has(e.key)) env.fail(what, `the owner lists ${e.key}, which it did not hold (v${e.version})`)
}

// ---- C's cases ---------------------------------------------------------------------

/**
 * Holders learn neither an object's size nor its write time: no ref H was sent (by `ref.put`, or at the
 * end of a `ref.store`) carries them. Nor its key's length: every manifest H holds is as long as one of
 * the padded sizes, encrypted, whatever the key's length (keys of 1 to 1,000 bytes are stored for it).
 */
async function metadata(env: Env): Promise<void> {
  const { c, h } = env
  const recipient = await recipientOf(env.rootC)
  // The length of an age file to the owner alone of each padded size.
  const sealed = new Map<number, number>()
  for (let size = KiB; size <= MiB; size *= 2) sealed.set((await encryptBytes(new Uint8Array(size), [recipient])).length, size)
  const seen: string[] = []
  const what = 'metadata: manifest lengths'
  env.report.extra.hostileCases++
  for (const length of [1, 40, 400, 700, 1000]) {
    const key = length === 1 ? 'm' : `adv/meta/${'k'.repeat(length - 9)}`
    const ref = await storeSeen(env, c, h, key, 3 * KiB)
    const bytes = ref === undefined ? undefined : h.blobs.get(ref.manifestCipherId)
    if (bytes === undefined) {
      env.fail(what, `the hostile peer holds no manifest of the ${length}-byte key (set-up)`)
      continue
    }
    const bucket = sealed.get(bytes.length)
    seen.push(`${length} B key: ${bytes.length} B${bucket === undefined ? ' (no padded size)' : ` (${bucket / KiB} KiB padded)`}`)
    if (bucket === undefined) env.fail(what, `the manifest of a ${length}-byte key is ${bytes.length} bytes on the hostile peer, not one of the padded sizes encrypted (${[...sealed.keys()].slice(0, 3).join(', ')}, …)`)
  }
  await c.delete('m').catch((err: unknown) => env.fail(what, `deleting the 1-byte key failed: ${messageOf(err)}`))
  // Every other manifest of C's that H holds, too.
  const held = [...new Set(h.refPuts.map((r) => r.manifestCipherId))].flatMap((id) => h.blobs.get(id) ?? [])
  const off = held.filter((b) => !sealed.has(b.length))
  if (off.length > 0) env.fail(what, `${off.length} of the ${held.length} manifests the hostile peer holds are not of a padded size (e.g. ${off[0]!.length} bytes)`)
  env.report.log(`${what}: ${seen.join('; ')}; ${held.length} manifests held by H, ${off.length} off the padded sizes`)

  const what2 = 'metadata: ref headers'
  env.report.extra.hostileCases++
  const fields = new Set(h.refPutHeaders.flatMap((header) => Object.keys(header)))
  for (const leak of ['size', 'writtenAt']) {
    const n = h.refPutHeaders.filter((header) => leak in header).length
    if (n > 0) env.fail(what2, `${n} of the ${h.refPutHeaders.length} refs the hostile peer was sent (ref.put, ref.store) carry ${leak}`)
  }
  if (h.refPutHeaders.length === 0) env.fail(what2, 'the hostile peer was sent no ref (set-up)')
  env.report.log(`${what2}: ${h.refPutHeaders.length} refs (ref.put, ref.store), fields ${[...fields].sort().join(', ')}`)
}

/**
 * In catch-up H lists, for keys C stored, a newer version whose manifest H made itself (v2 with a made-up
 * MAC, and v1 without one), and a live version of a key C deleted. C's keys must not change, the deleted
 * key must not come back, and no blob of C's live versions may be freed.
 */
async function forgedManifests(env: Env): Promise<void> {
  const { c, h } = env
  const what = 'hostile catch-up answer: manifests it made itself'
  const recipient = await recipientOf(env.rootC)
  const cases: Array<{ key: string; format: ManifestFormat; deleted: boolean }> = [
    { key: 'adv/forged/v2', format: 'dcas-manifest-v2', deleted: false },
    { key: 'adv/forged/v1', format: 'dcas-manifest-v1', deleted: false },
    { key: 'adv/forged/deleted', format: 'dcas-manifest-v2', deleted: true },
  ]
  for (const k of cases) {
    env.report.extra.hostileCases++
    const ref = await storeSeen(env, c, h, k.key, 100 * KiB)
    if (ref === undefined) continue
    if (k.deleted) await c.delete(k.key)
    const manifestCipherId = await forge(h, recipient, k.key, ref.version + 5, k.format)
    h.overrides.set(ref.refId, { refId: ref.refId, version: ref.version + 5, deleted: false, manifestCipherId })
  }
  const before = await c.list({ prefix: 'adv/' })
  const files = await liveBlobFiles(env.rootC, before)
  await h.disconnect()
  h.listMode = 'forged'
  try {
    await h.connect(c.address, env.secret)
    await c.waitForPeers(3, 15_000)
    await c.waitForSync()
  } catch (err) {
    env.fail(what, `reconnecting the hostile peer failed: ${messageOf(err)}`)
  }
  // Before any read (which would heal a freed blob from a peer).
  const gone = await missing(files)
  if (gone.length > 0) env.fail(what, `C freed ${gone.length} of the ${files.length} blob files of its live versions`)
  compareKeys(env, what, before, await c.list({ prefix: 'adv/' }))
  for (const k of cases) {
    if (k.deleted) {
      if (await c.has(k.key)) env.fail(what, `the deleted ${k.key} came back`)
      const read = await c.read(k.key).then(() => undefined, (err: unknown) => codeOf(err) ?? messageOf(err))
      if (read !== 'ERR_NOT_FOUND') env.fail(what, `reading the deleted ${k.key} gave ${read ?? 'bytes'}, not ERR_NOT_FOUND`)
    } else {
      const was = before.find((e) => e.key === k.key)
      const got = await c.read(k.key).catch(() => undefined)
      if (was !== undefined && got?.sha256 !== was.sha256) env.fail(what, `C does not read ${k.key} back as it stored it (${k.format})`)
    }
  }
  env.report.log(`${what}: ${cases.length} forged refs listed, ${files.length} blob files of C's live versions checked`)
  h.listMode = 'honest'
  h.overrides.clear()
  await healthy(env, what)
}

/**
 * In catch-up H answers `ref.list` with full pages of new refIds without end: deletes without a valid
 * proof, then live refs whose manifests are garbage (random bytes it holds, or blobs it lacks). C's
 * catch-up must end, its memory stay flat, and its keys stay as they were.
 */
async function endlessListings(env: Env): Promise<void> {
  const { c, h } = env
  const modes: Array<{ mode: ListMode; label: string }> = [
    { mode: 'endless-tombstones', label: 'pages of unproven deletes without end' },
    { mode: 'endless-garbage', label: 'pages of live refs with garbage manifests without end' },
  ]
  for (const { mode, label } of modes) {
    env.report.extra.hostileCases++
    const what = `hostile catch-up answer: ${label}`
    const keys = await c.list({ prefix: 'adv/' })
    await h.disconnect()
    h.listMode = mode
    h.listPages = 0
    const before = await c.usage()
    const started = Date.now()
    let outcome: 'ended' | 'timeout' | 'failed' = 'failed'
    try {
      await h.connect(c.address, env.secret)
      await c.waitForPeers(3, 15_000)
      outcome = (await bounded(c.waitForSync(), ENDLESS_LIMIT_MS)) === 'timeout' ? 'timeout' : 'ended'
    } catch (err) {
      env.fail(what, `reconnecting the hostile peer failed: ${messageOf(err)}`)
    }
    const ms = Date.now() - started
    const after = await c.usage()
    const pages = h.listPages
    env.report.log(
      `${what}: catch-up ${outcome === 'ended' ? `ended in ${ms} ms` : `had not ended after ${ms} ms`}; ${pages} pages (${pages * 256} entries) read; ` +
        `C's RSS ${mib(before.rss)} MiB before, ${mib(after.rss)} MiB after (${mib(after.rss - before.rss)} MiB more; heap ${mib(before.heapUsed)} to ${mib(after.heapUsed)} MiB)`,
    )
    if (outcome === 'timeout') env.fail(what, `C's catch-up with H had not ended after ${ENDLESS_LIMIT_MS / 1000} s (${pages} pages, ${pages * 256} entries read)`)
    if (after.rss - before.rss > 64 * MiB) env.fail(what, `C's memory grew by ${mib(after.rss - before.rss)} MiB while it read ${pages} pages`)
    // Honest again (which also ends a catch-up that did not end).
    await h.disconnect()
    h.listMode = 'honest'
    await reconnected(env, what).catch(() => {})
    await bounded(c.waitForSync(), ENDLESS_LIMIT_MS)
    compareKeys(env, what, keys, await c.list({ prefix: 'adv/' }))
    await healthy(env, what)
  }
}

/**
 * H, as an owner, stores into C without end: distinct random blobs of 200 KiB, then refs of new refIds.
 * C answers ERR_QUOTA past its limits (8 MiB, 100 refs per owner), holds at most the byte limit plus one
 * blob for H on its disk, and keeps serving A and B.
 */
async function quotas(env: Env): Promise<void> {
  const { c, h } = env
  const what = 'hostile owner: blobs without end'
  env.report.extra.hostileCases++
  await reconnected(env, what)
  const dir = join(env.rootC, 'replicas', h.nodeId)
  const heldBefore = await bytesUnder(dir)
  const size = 200 * KiB
  const offered = 2 * Math.ceil(HOLDER_LIMITS.bytesPerOwner / size)
  const answers = new Map<string, number>()
  const kept: string[] = []
  for (let i = 0; i < offered; i++) {
    const bytes = randomBytes(size)
    const answer = await h.putBlob(bytes).catch((err: unknown) => `failed: ${messageOf(err)}`)
    answers.set(answer, (answers.get(answer) ?? 0) + 1)
    if (answer === 'ok') kept.push(sha256(bytes))
  }
  const held = await bytesUnder(dir)
  const tally = (m: Map<string, number>): string => [...m].map(([a, n]) => `${n} ${a}`).join(', ')
  env.report.log(`${what}: ${offered} blobs of ${size / KiB} KiB offered (${mib(offered * size)} MiB): ${tally(answers)}; C holds ${mib(held)} MiB for H (${mib(heldBefore)} MiB before; limit ${mib(HOLDER_LIMITS.bytesPerOwner)} MiB)`)
  if ((answers.get('ERR_QUOTA') ?? 0) === 0) env.fail(what, `C answered no ERR_QUOTA to ${offered} blobs (${mib(offered * size)} MiB) with a quota of ${mib(HOLDER_LIMITS.bytesPerOwner)} MiB`)
  if (held > HOLDER_LIMITS.bytesPerOwner + size) env.fail(what, `C holds ${held} bytes for H, more than its quota (${HOLDER_LIMITS.bytesPerOwner}) plus one blob (${size})`)
  await healthy(env, what)

  const what2 = 'hostile owner: refs without end'
  env.report.extra.hostileCases++
  if (kept.length === 0) env.fail(what2, 'C took no blob of H at all (set-up)')
  else {
    const refAnswers = new Map<string, number>()
    const refsOffered = Math.ceil(1.5 * HOLDER_LIMITS.refsPerOwner)
    for (let i = 0; i < refsOffered; i++) {
      const answer = await h.putRef({ refId: randomBytes(32).toString('hex'), version: 1, manifestCipherId: kept[i % kept.length]!, cipherIds: [] }).catch((err: unknown) => `failed: ${messageOf(err)}`)
      refAnswers.set(answer, (refAnswers.get(answer) ?? 0) + 1)
    }
    env.report.log(`${what2}: ${refsOffered} new refs offered: ${tally(refAnswers)} (limit ${HOLDER_LIMITS.refsPerOwner})`)
    if ((refAnswers.get('ok') ?? 0) > HOLDER_LIMITS.refsPerOwner) env.fail(what2, `C took ${refAnswers.get('ok')} refs of H, more than its quota of ${HOLDER_LIMITS.refsPerOwner}`)
    if ((refAnswers.get('ERR_QUOTA') ?? 0) === 0) env.fail(what2, `C answered no ERR_QUOTA to ${refsOffered} new refs`)
  }
  await healthy(env, what2)
  // Other owners still get their copies on C.
  const r = await env.a.store('adv/quota/a-after', 100 * KiB, `adv-quota-${env.rng.hex()}`).catch((err: unknown) => err as Error)
  if (r instanceof Error) env.fail(what2, `A's store failed afterwards: ${r.message}`)
  else if (!r.replicas.includes(c.nodeId)) env.fail(what2, "C took no copy of A's object afterwards")
}

// ---- D's cases ---------------------------------------------------------------------

/** Options of D: holders A, B (dialled) and H (dials in); a write quorum of 1. */
const dOptions = (env: Env): { bootstrap: string[]; writeQuorum: number } => ({ bootstrap: [env.a.address, env.b.address], writeQuorum: 1 })

/** Starts owner D and connects H (its instance `hd`) to it. */
async function ownerD(env: Env, hd: HostilePeer): Promise<NodeHandle> {
  const d = await env.spawn('d', dOptions(env))
  await hd.connect(d.address, env.secret)
  await d.waitForPeers(3, 30_000)
  await d.waitForSync()
  return d
}

/** D is still connected to A and B. */
async function healthyD(env: Env, d: NodeHandle, what: string): Promise<void> {
  try {
    const peers = await d.peers()
    for (const honest of [env.a, env.b]) if (!peers.some((p) => p.nodeId === honest.nodeId && p.connected)) env.fail(what, `D lost its connection to honest peer ${honest.nodeId.slice(0, 12)}`)
  } catch (err) {
    env.fail(what, `D is not healthy afterwards: ${messageOf(err)}`)
  }
}

/**
 * H acknowledges each blob just under D's request timeout. A 1 MiB store on D must take about as long
 * as with H honest (it may not wait on H chunk by chunk); and while background replication toward H
 * waits on it, D's delete of that key must finish promptly.
 */
async function slowHolder(env: Env, d: NodeHandle, hd: HostilePeer): Promise<void> {
  const what = 'slow holder: a store while H acknowledges each blob just under the request timeout'
  env.report.extra.hostileCases++
  hd.putMode = 'keep'
  const honest = await d.store('adv/slow/honest', MiB, `adv-slow-honest-${env.rng.hex()}`)
  hd.putMode = 'slow'
  hd.slowAckMs = REQUEST_TIMEOUT - 250
  // Background replication toward H asks which blobs it lacks (blob.has), then sends them.
  let asked = false
  let onRequest: ((op: string) => void) | undefined
  const transferring = new Promise<void>((resolve) => {
    onRequest = (op) => {
      if (op === 'blob.has') asked = true
      else if (op === 'blob.put' && asked) resolve()
    }
    hd.events.on('request', onRequest)
  })
  try {
    const slow = await d.store('adv/slow/slow', MiB, `adv-slow-slow-${env.rng.hex()}`)
    env.report.log(`${what}: a 1 MiB store on D took ${Math.round(honest.ms)} ms with H honest, ${Math.round(slow.ms)} ms with H acknowledging each blob after ${hd.slowAckMs} ms (replicas: ${slow.replicas.length}, H ${slow.replicas.includes(hd.nodeId) ? 'among them' : 'left behind'})`)
    if (slow.ms > honest.ms + 2 * REQUEST_TIMEOUT) env.fail(what, `the store took ${Math.round(slow.ms)} ms, against ${Math.round(honest.ms)} ms with H honest: it waited on the slow holder`)

    const what2 = 'slow holder: a delete while background replication waits on H'
    env.report.extra.hostileCases++
    if ((await bounded(transferring, 15_000)) === 'timeout') env.fail(what2, 'no background replication toward H began within 15 s (set-up)')
    else {
      const started = Date.now()
      const deleted = await bounded(d.delete('adv/slow/slow').catch((err: unknown) => err as Error), DELETE_LIMIT_MS)
      const ms = Date.now() - started
      env.report.log(`${what2}: D's delete took ${deleted === 'timeout' ? `over ${ms}` : ms} ms while background replication waited on H`)
      if (deleted === 'timeout') env.fail(what2, `D's delete had not finished after ${ms} ms: it waits behind the transfer`)
      else if (deleted instanceof Error) env.fail(what2, `D's delete failed: ${deleted.message}`)
      else if (ms > 2 * REQUEST_TIMEOUT) env.fail(what2, `D's delete took ${ms} ms: it waited behind the transfer`)
      if (await d.has('adv/slow/slow')) env.fail(what2, 'D still holds the key it deleted')
    }
  } finally {
    if (onRequest !== undefined) hd.events.off('request', onRequest)
    hd.putMode = 'keep'
    hd.slowAckMs = 0
  }
  await d.waitForSync()
  await healthyD(env, d, what)
}

/**
 * H acknowledges a store's blobs but keeps none; later it makes up its proofs for another it holds. After
 * each scrub of D's, H's copy counts as lost and H is no longer among the key's replicas, while H's honest
 * copies and A's and B's pass. H takes nothing more meanwhile (as if full), so a lost copy stays lost.
 */
async function audits(env: Env, d: NodeHandle, hd: HostilePeer): Promise<void> {
  const dropped = 'adv/audit/dropped'
  const kept = 'adv/audit/kept'
  hd.putMode = 'drop'
  await d.store(dropped, 300 * KiB, `adv-audit-dropped-${env.rng.hex()}`)
  hd.putMode = 'keep'
  await d.store(kept, 300 * KiB, `adv-audit-kept-${env.rng.hex()}`)
  await d.waitForSync()
  for (const key of [dropped, kept]) {
    if (!(await d.stat(key)).replicas.includes(hd.nodeId)) env.fail('audit', `H is not among the replicas of ${key} (set-up)`)
  }
  hd.putMode = 'refuse'
  const honest = new Set([env.a.nodeId, env.b.nodeId])
  const round = async (what: string, key: string, passes: string | undefined): Promise<void> => {
    env.report.extra.hostileCases++
    const proves = hd.proves
    const result = await d.scrub({ audit: 1000 }).catch((err: unknown) => err as Error)
    if (result instanceof Error) return env.fail(what, `D's scrub failed: ${result.message}`)
    const lost = result.lostCopies ?? []
    env.report.log(`${what}: D's scrub audited ${result.audited} copies (${hd.proves - proves} on H): ${lost.length} lost (${lost.map((l) => `${l.key} on ${l.nodeId === hd.nodeId ? 'H' : l.nodeId.slice(0, 8)}: ${l.reason}`).join('; ')})`)
    if (result.lostCopies === undefined) env.fail(what, 'the scrub reports no audit at all')
    if (!lost.some((l) => l.key === key && l.nodeId === hd.nodeId)) env.fail(what, `H's copy of ${key} is not among the lost copies`)
    if (passes !== undefined && lost.some((l) => l.key === passes && l.nodeId === hd.nodeId)) env.fail(what, `H's intact copy of ${passes}, which it proved, counts as lost`)
    for (const l of lost) if (honest.has(l.nodeId)) env.fail(what, `an honest holder's copy of ${l.key} counts as lost (${l.reason})`)
    const replicas = (await d.stat(key)).replicas
    if (replicas.includes(hd.nodeId)) env.fail(what, `H is still among the replicas of ${key} after the audit`)
    for (const id of honest) if (!replicas.includes(id)) env.fail(what, `an honest holder is no longer among the replicas of ${key}`)
  }
  try {
    await round('audit: a holder that acknowledged blobs and kept none', dropped, kept)
    hd.proveMode = 'made-up'
    await round('audit: a holder that makes up its proofs', kept, undefined)
  } finally {
    hd.proveMode = 'honest'
    hd.putMode = 'keep'
  }
  await healthyD(env, d, 'audit')
}

/**
 * D loses everything but identity/ and restarts; H offers, for a key D stored and one it deleted, a newer
 * version whose manifest H made. A read right away (when D may know of the key only what its peers answer)
 * and D's catch-up must give back D's own object, and the deleted key must stay deleted (a read of it
 * answers ERR_NOT_FOUND: its peers hold D's proven delete).
 */
async function forgedAfterLoss(env: Env, d: NodeHandle, hd: HostilePeer): Promise<NodeHandle> {
  const what = 'recovery after local loss: manifests the hostile peer made itself'
  env.report.extra.hostileCases++
  const root = join(env.dir, 'd')
  const recipient = await recipientOf(root)
  const kept = await storeSeen(env, d, hd, 'adv/loss/kept', 100 * KiB)
  const deleted = await storeSeen(env, d, hd, 'adv/loss/deleted', 50 * KiB)
  if (kept === undefined || deleted === undefined) return d
  await d.delete('adv/loss/deleted')
  await d.waitForSync()
  for (const ref of [kept, deleted]) {
    const key = ref === kept ? 'adv/loss/kept' : 'adv/loss/deleted'
    hd.overrides.set(ref.refId, { refId: ref.refId, version: ref.version + 5, deleted: false, manifestCipherId: await forge(hd, recipient, key, ref.version + 5, 'dcas-manifest-v2') })
  }
  hd.listMode = 'forged'
  await hd.disconnect()
  env.retire(d)
  await d.close()
  for (const sub of ['index', 'blobs']) await rm(join(root, sub), { recursive: true, force: true })
  const restarted = await env.spawn('d', dOptions(env))
  try {
    await hd.connect(restarted.address, env.secret)
    const early = await restarted.read('adv/loss/kept').catch((err: unknown) => err as Error)
    if (!(early instanceof Error) && early.sha256 !== kept.sha256) env.fail(what, 'D read back bytes it never stored')
    await restarted.waitForPeers(3, 30_000)
    await restarted.waitForSync()
    const now = await restarted.stat('adv/loss/kept').catch(() => undefined)
    if (now === undefined) env.fail(what, 'D did not get adv/loss/kept back')
    else if (now.version !== kept.version || now.sha256 !== kept.sha256) env.fail(what, `D's adv/loss/kept is v${now.version}${now.sha256 === kept.sha256 ? '' : ' with other bytes'}, not the v${kept.version} it stored`)
    const got = await restarted.read('adv/loss/kept').catch(() => undefined)
    if (got?.sha256 !== kept.sha256) env.fail(what, 'D does not read adv/loss/kept back as it stored it')
    if (await restarted.has('adv/loss/deleted')) env.fail(what, 'the deleted adv/loss/deleted came back')
    // D knows the delete only by its refId (the key's name went with the index): the read asks the peers again, and must find it deleted.
    const gone = await restarted.read('adv/loss/deleted').then(() => undefined, (err: unknown) => codeOf(err) ?? messageOf(err))
    if (gone === undefined) env.fail(what, 'D read back the deleted adv/loss/deleted')
    else if (gone !== 'ERR_NOT_FOUND') env.fail(what, `D's read of the deleted adv/loss/deleted failed with ${gone}, not ERR_NOT_FOUND (its peers hold its proven delete)`)
    env.report.log(
      `${what}: a read right after the restart ${early instanceof Error ? `failed (${codeOf(early) ?? early.message})` : early.sha256 === kept.sha256 ? "gave back D's own bytes" : 'gave back bytes D never stored'}; after catch-up D holds v${now?.version ?? '?'} of the key, ` +
        `and a read of the deleted key fails with ${gone ?? 'nothing'}`,
    )
  } catch (err) {
    env.fail(what, `the restart failed: ${messageOf(err)}`)
  } finally {
    hd.listMode = 'honest'
    hd.overrides.clear()
  }
  return restarted
}
