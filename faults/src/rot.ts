// Bit rot at rest: bytes flipped in place in random blob files, on owners (their plaintext
// chunks and manifests) and on one chosen holder (its replicas), plus the odd blob file removed.
// One holder per run takes replica rot, so every object keeps an intact copy on a third node.
import type { Cluster } from './cluster.js'
import { heldManifestIn, identitiesOf, ownBlobFiles, ownManifestIn, replicaFiles, type RotTracker } from './disk.js'
import type { Report } from './report.js'
import type { Rng } from './rng.js'

export async function rotRound(cluster: Cluster, rng: Rng, rot: RotTracker, report: Report, replicaNode: number): Promise<void> {
  for (const s of cluster.live) {
    const files = (await ownBlobFiles(s.root)).sort()
    for (const f of rng.sample(files, rng.int(0, 4))) {
      if (rng.chance(0.15)) {
        await rot.remove(f, await ownManifestIn(f))
        report.log(`rot: removed ${s.name}'s blob ${f.slice(-64, -52)}…`)
        continue
      }
      if (rot.files.has(f)) continue
      report.bitflips += await rot.flip(f, rng, rng.int(1, 3), await ownManifestIn(f))
      report.log(`rot: flipped bits in ${s.name}'s blob ${f.slice(-64, -52)}…`)
    }
  }
  const holder = cluster.slot(replicaNode)
  if (holder.gone) return
  for (const owner of cluster.live) {
    if (owner === holder) continue
    const files = (await replicaFiles(holder.root, owner.nodeId)).sort()
    const identities = await identitiesOf(owner.root)
    for (const f of rng.sample(files, rng.int(0, 4))) {
      if (rot.files.has(f)) continue
      report.bitflips += await rot.flip(f, rng, rng.int(1, 3), await heldManifestIn(f, identities))
      report.log(`rot: flipped bits in ${holder.name}'s replica ${f.slice(-64, -52)}… of ${owner.name}`)
    }
  }
}
