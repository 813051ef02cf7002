// How the daemon computes the replica health and disk use that `GET /v1/status` reports.
import { opendir, statfs, lstat } from 'node:fs/promises'
import { join } from 'node:path'
import type { ListEntry, Server } from '@dcas/server'
import type { DiskUsage, LaggingObject, LaggingPage, ReplicaHealth } from './status.js'

const PAGE = 1000

/**
 * Each object from `after` on, in key order, with the peers that hold its version, how many of them are
 * live (not lost), and, when that is fewer than `target`, the live known peers that do not hold it.
 */
async function* replicaStates(server: Server, target: number, after?: string): AsyncGenerator<{ entry: ListEntry; replicas: string[]; copies: number; missing: string[] }> {
  const live = server.peers().filter((p) => p.state !== 'lost').map((p) => p.nodeId)
  const isLive = new Set(live)
  for (;;) {
    const page = await server.list({ limit: PAGE, ...(after === undefined ? {} : { after }) })
    for (const entry of page) {
      let replicas: string[]
      try {
        replicas = (await server.stat(entry.key)).replicas
      } catch {
        continue // deleted meanwhile
      }
      const copies = replicas.filter((id) => isLive.has(id)).length
      yield { entry, replicas, copies, missing: copies >= target ? [] : live.filter((id) => !replicas.includes(id)) }
    }
    if (page.length < PAGE) return
    after = page.at(-1)!.key
  }
}

/** Walks every object's `stat` to tell which ones have fewer than `target` live peer copies (placement's; every known peer by default). */
export async function replicaHealth(server: Server, target = server.peers().length): Promise<ReplicaHealth> {
  const health: ReplicaHealth = { objects: 0, bytes: 0, replicated: 0, lagging: 0, lagBytes: 0, unreplicated: 0 }
  for await (const { entry, copies } of replicaStates(server, target)) {
    health.objects++
    health.bytes += entry.size
    if (copies === 0) health.unreplicated++
    if (copies >= target) health.replicated++
    else {
      health.lagging++
      health.lagBytes += entry.size
    }
  }
  return health
}

/** The objects (after `after`, in key order, `limit` at most) with fewer than `target` live peer copies. */
export async function laggingObjects(server: Server, options: { limit: number; after?: string; target?: number }): Promise<LaggingPage> {
  const objects: LaggingObject[] = []
  const target = options.target ?? server.peers().length
  for await (const { entry, replicas, copies, missing } of replicaStates(server, target, options.after)) {
    if (copies >= target) continue
    if (objects.length === options.limit) return { objects, next: objects.at(-1)!.key }
    objects.push({ key: entry.key, size: entry.size, version: entry.version, updatedAt: entry.updatedAt, replicas, missing })
  }
  return { objects }
}

/** Total size of the regular files under `dir` (0 when it does not exist), walked without listing it whole. */
export async function directorySize(dir: string): Promise<number> {
  let total = 0
  let handle
  try {
    handle = await opendir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0
    throw err
  }
  for await (const entry of handle) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) total += await directorySize(path)
    else if (entry.isFile()) total += await lstat(path).then((s) => s.size, () => 0)
  }
  return total
}

/** Disk use of a data directory and the free space left on its file system. */
export async function diskUsage(root: string): Promise<DiskUsage> {
  const [blobs, replicas, index, fs] = await Promise.all([directorySize(join(root, 'blobs')), directorySize(join(root, 'replicas')), directorySize(join(root, 'index')), statfs(root)])
  return { blobs, replicas, index, free: fs.bavail * fs.bsize }
}
