// How the daemon computes the replica health and disk use that `GET /v1/status` reports.
import { opendir, statfs, lstat } from 'node:fs/promises'
import { join } from 'node:path'
import type { ListEntry, Server } from '@dcas/server'
import type { DiskUsage, LaggingObject, LaggingPage, ReplicaHealth } from './status.js'

const PAGE = 1000

/** Each object from `after` on, in key order, with the peers that hold its version and the known ones that do not. */
async function* replicaStates(server: Server, after?: string): AsyncGenerator<{ entry: ListEntry; replicas: string[]; missing: string[] }> {
  const known = server.peers().map((p) => p.nodeId)
  for (;;) {
    const page = await server.list({ limit: PAGE, ...(after === undefined ? {} : { after }) })
    for (const entry of page) {
      let replicas: string[]
      try {
        replicas = (await server.stat(entry.key)).replicas
      } catch {
        continue // deleted meanwhile
      }
      yield { entry, replicas, missing: known.filter((id) => !replicas.includes(id)) }
    }
    if (page.length < PAGE) return
    after = page.at(-1)!.key
  }
}

/** Walks every object's `stat` to tell which ones some known peer lacks. */
export async function replicaHealth(server: Server): Promise<ReplicaHealth> {
  const health: ReplicaHealth = { objects: 0, bytes: 0, replicated: 0, lagging: 0, lagBytes: 0, unreplicated: 0 }
  for await (const { entry, replicas, missing } of replicaStates(server)) {
    health.objects++
    health.bytes += entry.size
    if (replicas.length === 0) health.unreplicated++
    if (missing.length === 0) health.replicated++
    else {
      health.lagging++
      health.lagBytes += entry.size
    }
  }
  return health
}

/** The objects (after `after`, in key order, `limit` at most) that some known peer does not hold. */
export async function laggingObjects(server: Server, options: { limit: number; after?: string }): Promise<LaggingPage> {
  const objects: LaggingObject[] = []
  for await (const { entry, replicas, missing } of replicaStates(server, options.after)) {
    if (missing.length === 0) continue
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
