// How the daemon computes the replica health and disk use that `GET /v1/status` reports.
import { opendir, statfs, lstat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Server } from '@dcas/server'
import type { DiskUsage, ReplicaHealth } from './status.js'

const PAGE = 1000

/** Walks every object's `stat` to tell which ones some known peer lacks. */
export async function replicaHealth(server: Server): Promise<ReplicaHealth> {
  const known = server.peers().map((p) => p.nodeId)
  const health: ReplicaHealth = { objects: 0, bytes: 0, replicated: 0, lagging: 0, lagBytes: 0, unreplicated: 0 }
  let after: string | undefined
  for (;;) {
    const page = await server.list({ limit: PAGE, ...(after === undefined ? {} : { after }) })
    for (const entry of page) {
      let replicas: string[]
      try {
        replicas = (await server.stat(entry.key)).replicas
      } catch {
        continue // deleted meanwhile
      }
      health.objects++
      health.bytes += entry.size
      if (replicas.length === 0) health.unreplicated++
      if (known.every((id) => replicas.includes(id))) health.replicated++
      else {
        health.lagging++
        health.lagBytes += entry.size
      }
    }
    if (page.length < PAGE) return health
    after = page.at(-1)!.key
  }
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
