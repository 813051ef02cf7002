// What `GET /v1/status` and `dcas status` report: peers, replica health, disk and memory use.
import { opendir, statfs, lstat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Server, ScrubResult } from '@dcas/server'

/** A peer as the status shows it: a known node, or a configured address never reached. */
export interface PeerStatus {
  /** Its node id, once it has connected. */
  nodeId?: string
  /** The address this node dials it at, when it dials it. */
  address?: string
  connected: boolean
  /** Why the last dial failed (while not connected). */
  error?: { code?: string; message: string; at: number }
  /** `active`, `leaving` (being drained) or `lost` (unseen longer than lostAfter). */
  state?: 'active' | 'leaving' | 'lost'
  /** Its zone and the bytes it offers to hold for others, as its peer record says. */
  zone?: string
  capacity?: number
  /** When it was last seen alive (ms since the epoch). */
  lastSeen?: number
}

/** How well this node's objects are replicated. */
export interface ReplicaHealth {
  /** Objects stored on this node. */
  objects: number
  /** Their total size in bytes. */
  bytes: number
  /** Objects with all the peer copies placement asks for (the current version). */
  replicated: number
  /** Objects with fewer: the replication lag. */
  lagging: number
  /** Bytes of the lagging objects. */
  lagBytes: number
  /** Objects no peer holds: a lost disk loses them. */
  unreplicated: number
}

/** How this node's objects sit on their placed holders (the server's `placementStatus()`). */
export interface ReplicationStatus {
  /** Peer copies each object should have. */
  target: number
  /** How many objects have 0, 1, … live peer copies (keys are the numbers of copies). */
  objectsByCopies: Record<string, number>
  repair: {
    /** Objects with a copy still to make or to release. */
    objectsLeft: number
    /** Bytes still to copy. */
    bytesLeft: number
    /** Seconds left at the recent repair rate, when there is one. */
    etaSeconds?: number
    /** Every object on its placed holders, nothing left to copy or release. */
    settled: boolean
  }
}

/** Bytes on disk under the data directory. */
export interface DiskUsage {
  /** This node's own chunks and manifests (`blobs/`). */
  blobs: number
  /** Replicas held for other nodes (`replicas/`). */
  replicas: number
  /** The metadata index (`index/`). */
  index: number
  /** Free space for this user on the data directory's file system. */
  free: number
}

/** The whole status of a running node. */
export interface NodeStatus {
  nodeId: string
  /** Where it listens for peers. */
  address: string
  /** The HTTP API's URL. */
  api: string
  root: string
  pid: number
  /** `@dcas/cli` version. */
  version: string
  /** Seconds since `dcas serve` started. */
  uptime: number
  peers: PeerStatus[]
  objects: ReplicaHealth
  /** Placement: the copies each object should have, how many have how many, and the repair or rebalancing left. */
  replication: ReplicationStatus
  disk: DiskUsage
  memory: { rss: number; maxRss: number; heapUsed: number }
  /** Chunks healed from peers since the start. */
  healed: number
  /** The last scrub since the start, if any. */
  lastScrub?: ScrubResult & { at: number }
}

const PAGE = 1000

/** Walks every object's `stat` to tell which ones have fewer than `target` live peer copies. */
export async function replicaHealth(server: Server, target: number): Promise<ReplicaHealth> {
  const live = new Set(server.peers().filter((p) => p.state !== 'lost').map((p) => p.nodeId))
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
      const copies = replicas.filter((id) => live.has(id)).length
      if (copies === 0) health.unreplicated++
      if (copies >= target) health.replicated++
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
