// The invariants, checked against the record once the cluster is quiet: every key reads back as
// the record says (from its owner), every owner lists exactly its live keys, no blob under a
// final name is partial, every peer holds exactly the live replicas, owners hold exactly their
// live blobs, and no canary is on another node's disk or crossed a link.
import { basename, join } from 'node:path'
import type { ListEntry } from '@dcas/server'
import type { NodeHandle } from '@dcas/server/testing'
import type { Cluster } from './cluster.js'
import { countIn, filesUnder, heldManifestIn, identitiesOf, manifestsIn, ownBlobFiles, ownManifestIn, replicaFiles, replicaOwners, sha256File, type ManifestView, type RotTracker } from './disk.js'
import { describe, judgeRead, type KeyRecord } from './model.js'
import type { Report } from './report.js'
import type { Workload } from './workload.js'

const codeOf = (err: unknown): string | undefined => (err as { code?: string }).code

/** Every key of every owner listed (all pages). */
async function listAll(handle: NodeHandle): Promise<ListEntry[]> {
  const out: ListEntry[] = []
  let after: string | undefined
  for (;;) {
    const page = await handle.list({ limit: 500, ...(after === undefined ? {} : { after }) })
    out.push(...page)
    if (page.length < 500) return out
    after = page[page.length - 1]!.key
  }
}

/** Reads every key from its owner and judges it; then compares each owner's list with the record. */
export async function verifyReads(cluster: Cluster, workload: Workload, report: Report, phase: string): Promise<void> {
  const byOwner = new Map<number, KeyRecord[]>()
  for (const rec of workload.records.values()) byOwner.set(rec.owner, [...(byOwner.get(rec.owner) ?? []), rec])
  await Promise.all(
    [...byOwner].map(async ([owner, recs]) => {
      for (const rec of recs) await verifyKey(cluster, rec, report, phase)
      const handle = await cluster.slot(owner).waitUp()
      const listed = new Map((await listAll(handle)).map((e) => [e.key, e]))
      for (const rec of recs) {
        const entry = listed.get(rec.key)
        listed.delete(rec.key)
        if (entry === undefined && rec.mustBeLive) report.violation('lost', `${phase}: n${owner} does not list ${rec.key}, stored as ${rec.liveContents().map(describe).join(' or ')}`)
        if (entry !== undefined && rec.mustBeDeleted) report.violation('resurrected', `${phase}: n${owner} lists the deleted key ${rec.key} (v${entry.version})`)
      }
      for (const key of listed.keys()) report.violation('phantom', `${phase}: n${owner} lists ${key.slice(0, 60)}, which nobody stored`)
    }),
  )
}

async function verifyKey(cluster: Cluster, rec: KeyRecord, report: Report, phase: string): Promise<void> {
  let lastError = ''
  for (let attempt = 0; attempt < 3; attempt++) {
    const handle = await cluster.slot(rec.owner).waitUp()
    try {
      const got = await handle.read(rec.key)
      const verdict = await judgeRead(rec, got)
      if (!verdict.ok) report.violation(verdict.kind, `${phase}: n${rec.owner} read ${rec.key}: ${verdict.detail}`)
      return
    } catch (err) {
      const code = codeOf(err)
      if (code === 'ERR_NOT_FOUND') {
        if (rec.mustBeLive) report.violation('lost', `${phase}: n${rec.owner} read ${rec.key}: not found, stored as ${rec.liveContents().map(describe).join(' or ')}`)
        else rec.confirm({ deleted: true })
        return
      }
      lastError = `${code}: ${err instanceof Error ? err.message : String(err)}`
    }
  }
  if (rec.mayBeLive) report.violation('lost', `${phase}: n${rec.owner} read ${rec.key} failed three times on a quiet cluster (${lastError.slice(0, 300)})`)
  else report.violation('unreadable', `${phase}: n${rec.owner} read of the deleted ${rec.key} failed instead of not-found (${lastError.slice(0, 300)})`)
}

/**
 * The disk-level invariants, on a quiet cluster whose keys were all just read. With `replicas`, each live
 * version must be held by exactly that many peers (as many as there are, when fewer); without, by every peer.
 */
export async function verifyDisks(cluster: Cluster, rot: RotTracker, canaries: Buffer[], report: Report, phase: string, replicas?: number): Promise<void> {
  const slots = cluster.live
  const idOf = new Map(slots.map((s) => [s.nodeId, s]))

  // No partial or damaged blob under a final name, other than damage we made and nobody read since.
  for (const s of slots) {
    const files = [...(await ownBlobFiles(s.root))]
    for (const owner of await replicaOwners(s.root)) files.push(...(await replicaFiles(s.root, owner)))
    for (const f of files) {
      if ((await sha256File(f)) === basename(f)) continue
      if (await rot.untouchedSince(f)) {
        report.extra.rottenLeft++
        continue
      }
      report.violation('partial blob', `${phase}: ${f} does not hash to its name`)
    }
  }

  // Owners hold exactly the blobs of their live versions; every peer holds exactly their live replicas.
  for (const owner of slots) {
    const handle = await owner.waitUp()
    const live = new Map((await listAll(handle)).map((e) => [e.key, e.version]))
    const isLive = (m: ManifestView): boolean => live.get(m.key) === m.version
    const ownFiles = await ownBlobFiles(owner.root)
    const mine = (await manifestsIn(ownFiles, ownManifestIn, rot)).filter(isLive)
    compareSets(
      report,
      `${phase}: ${owner.name}'s own blobs`,
      new Set(mine.flatMap((m) => [m.id, ...m.chunks.map((c) => c.plainId)])),
      new Set(ownFiles.map((f) => basename(f))),
      'owner blob',
    )
    missingVersions(report, `${phase}: ${owner.name}'s own manifests`, live, mine)
    const identities = await identitiesOf(owner.root)
    const holders = new Map<string, string[]>()
    for (const holder of slots) {
      if (holder === owner) continue
      const files = await replicaFiles(holder.root, owner.nodeId)
      const held = (await manifestsIn(files, (f) => heldManifestIn(f, identities), rot)).filter(isLive)
      compareSets(
        report,
        `${phase}: ${holder.name}'s replicas of ${owner.name}`,
        new Set(held.flatMap((m) => [m.id, ...m.chunks.map((c) => c.cipherId)])),
        new Set(files.map((f) => basename(f))),
        'replica',
      )
      if (replicas === undefined) missingVersions(report, `${phase}: ${holder.name}'s replica manifests of ${owner.name}`, live, held)
      for (const m of held) holders.set(`${m.key}\u0000${m.version}`, [...(holders.get(`${m.key}\u0000${m.version}`) ?? []), holder.name])
    }
    if (replicas !== undefined) {
      // Placement: every live version on exactly its number of copies, no fewer (lost) and no more (not released).
      const want = Math.min(replicas, slots.length - 1)
      for (const [key, version] of live) {
        const on = holders.get(`${key}\u0000${version}`) ?? []
        if (on.length < want) report.violation('replica missing', `${phase}: ${owner.name}'s ${key.slice(0, 40)} v${version} is on ${on.length} peers (${on.join(' ') || 'none'}), not ${want}`)
        if (on.length > want) report.violation('replica not released', `${phase}: ${owner.name}'s ${key.slice(0, 40)} v${version} is on ${on.length} peers (${on.join(' ')}), not ${want}`)
      }
    }
    for (const other of await replicaOwners(owner.root)) {
      if (!idOf.has(other)) continue
      if (other === owner.nodeId) report.violation('replica', `${phase}: ${owner.name} holds replicas of itself`)
    }
  }

  // Confidentiality: no node's disk holds another owner's canary; no link carried any.
  for (const s of slots) {
    const foreign = canaries.filter((_, i) => i !== s.index)
    for (const f of await filesUnder(s.root)) {
      const hits = await countIn(f, foreign)
      if (hits > 0) report.violation('confidentiality', `${phase}: ${hits} canary occurrence(s) of another owner in ${f}`)
    }
  }
  for (const l of cluster.links) {
    if (l.proxy.stats.canaryHits > 0) report.violation('confidentiality', `${phase}: ${l.proxy.stats.canaryHits} canary occurrence(s) crossed link ${l.proxy.name}`)
  }
}

function compareSets(report: Report, what: string, expected: Set<string>, actual: Set<string>, kind: string): void {
  const missing = [...expected].filter((id) => !actual.has(id))
  const extra = [...actual].filter((id) => !expected.has(id))
  if (missing.length > 0) report.violation(`${kind} missing`, `${what}: ${missing.length} missing (${missing.slice(0, 3).map((id) => id.slice(0, 12)).join(', ')}…)`)
  if (extra.length > 0) report.violation(`${kind} not freed`, `${what}: ${extra.length} not freed (${extra.slice(0, 3).map((id) => id.slice(0, 12)).join(', ')}…)`)
}

function missingVersions(report: Report, what: string, live: Map<string, number>, manifests: ManifestView[]): void {
  const have = new Set(manifests.map((m) => `${m.key}\u0000${m.version}`))
  const missing = [...live].filter(([key, version]) => !have.has(`${key}\u0000${version}`))
  if (missing.length > 0) report.violation('manifest missing', `${what}: no manifest for ${missing.length} live version(s), e.g. ${missing[0]![0].slice(0, 40)} v${missing[0]![1]}`)
}

/**
 * Durability of acknowledgements, checked on a node's disk while it is down after kill -9: every
 * store that resolved (and was not touched since) has its manifest and chunks on its owner, and
 * on every peer it named in `replicas`. Files we damaged or removed on purpose are excused.
 */
export async function verifyDurable(cluster: Cluster, workload: Workload, victim: number, rot: RotTracker, report: Report): Promise<void> {
  const slot = cluster.slot(victim)
  // A snapshot: the workload goes on while the disk is read, and may store these keys again meanwhile.
  const settled = [...workload.records.values()].flatMap((r) =>
    r.acked !== undefined && r.acked.seq === r.seq && !r.busy && r.acked.seq > slot.lossClock ? [{ key: r.key, owner: r.owner, ...r.acked }] : [],
  )
  type Acked = (typeof settled)[number]
  // A manifest file that the bit rot removed counts as held: the node did write it.
  const check = async (what: string, acks: Acked[], dir: string, read: (f: string) => Promise<ManifestView | undefined>, chunkPath: (c: ManifestView['chunks'][number]) => string): Promise<void> => {
    if (acks.length === 0) return
    const files = await filesUnder(dir)
    const manifests = [...rot.removedManifestsUnder(dir), ...(await manifestsIn(files, read, rot))]
    const byVersion = new Map(manifests.map((m) => [`${m.key}\u0000${m.version}`, m]))
    const present = new Set(files)
    for (const a of acks) {
      const m = byVersion.get(`${a.key}\u0000${a.version}`)
      if (m === undefined) {
        report.violation('durability', `${slot.name} was killed after acknowledging ${a.key.slice(0, 40)} v${a.version} (${what}), but holds no manifest of it`)
        continue
      }
      const missing = m.chunks.map(chunkPath).filter((p) => !present.has(p) && !rot.touched(p))
      if (missing.length > 0) report.violation('durability', `${slot.name} was killed after acknowledging ${a.key.slice(0, 40)} v${a.version} (${what}), but lacks ${missing.length} of its chunks`)
    }
  }
  const blobAt = (root: string, id: string): string => join(root, 'blobs', id.slice(0, 2), id.slice(2, 4), id)
  await check(
    'as its owner',
    settled.filter((a) => a.owner === victim),
    join(slot.root, 'blobs'),
    ownManifestIn,
    (c) => blobAt(slot.root, c.plainId),
  )
  for (const owner of cluster.live) {
    if (owner === slot) continue
    const acks = settled.filter((a) => a.owner === owner.index && a.replicas.includes(slot.nodeId))
    if (acks.length === 0) continue
    const identities = await identitiesOf(owner.root)
    const root = join(slot.root, 'replicas', owner.nodeId)
    await check(`as a replica of ${owner.name}`, acks, join(root, 'blobs'), (f) => heldManifestIn(f, identities), (c) => blobAt(root, c.cipherId))
  }
}
