import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createMemoryNetwork, loadOrCreateIdentity, memoryTransport, type MemoryNetwork } from '@dcas/p2p'
import { afterEach, beforeEach } from 'vitest'
import type { NodeHandle } from '@dcas/server/testing'
import { createServer, type Logger, type Server, type ServerEvents, type ServerOptions } from '../src/index.js'

/** A temporary folder removed by `cleanup()`. */
export async function tempDir(): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), 'dcas-server-test-'))
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) }
}

/** Collects a readable (or any async iterable of bytes) into one buffer: for small test objects only. */
export async function collect(source: AsyncIterable<Uint8Array | string>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const p of source) parts.push(typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))
  return Buffer.concat(parts)
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** Every regular file under `dir`, recursively. */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = []
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true, recursive: true })
  } catch {
    return out
  }
  for (const e of entries) if (e.isFile()) out.push(join(e.parentPath, e.name))
  return out
}

/** Whether `needle` occurs in any file under `dir`. */
export async function foundUnder(dir: string, needle: Uint8Array): Promise<string[]> {
  const hits: string[] = []
  for (const f of await filesUnder(dir)) if ((await readFile(f)).includes(Buffer.from(needle))) hits.push(f)
  return hits
}

/** The blob files of one node's own store (plaintext chunks and manifests). */
export async function ownBlobFiles(root: string): Promise<string[]> {
  return filesUnder(join(root, 'blobs'))
}

/** The replica blob files a node holds for `owner`. */
export async function replicaFiles(root: string, owner: string): Promise<string[]> {
  return filesUnder(join(root, 'replicas', owner, 'blobs'))
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/** Random bytes of a given size. */
export const bytes = (n: number): Buffer => randomBytes(n)

/** Prints a node's log lines, prefixed by its name: set DCAS_TEST_LOG=1 to see what the servers of a test did. */
function consoleLogger(name: string): Logger {
  const line = (level: string) => (fields: unknown, message?: string) => console.log(name, level, message ?? '', JSON.stringify(fields).slice(0, 300))
  return { debug: () => {}, info: line('info'), warn: line('warn'), error: line('error') }
}

/** Server options plus how the in-memory transport identifies and admits the node. */
export type NodeExtra = Partial<ServerOptions> & { nodeId?: string; clusterSecret?: string }

/** Three (or more) servers on one in-memory network, wired like the original demo: B dials A, C dials A and B. */
export class Cluster {
  readonly network: MemoryNetwork = createMemoryNetwork()
  readonly servers: Server[] = []
  readonly roots: string[] = []
  readonly #dir: string
  readonly #nodeIds = new Map<string, string>()

  constructor(dir: string) {
    this.#dir = dir
  }

  /**
   * Starts a server listening at `<name>:1` with its root at `<dir>/<name>` (or `root`), dialling `dial`.
   * Its node id is its identity's in `root/identity` (as over TCP), so that it signs its peer record;
   * `nodeId` forces another one (the node then publishes no record).
   */
  async add(name: string, dial: string[] = [], extra: NodeExtra = {}): Promise<Server> {
    const { nodeId, clusterSecret = 'test-cluster-secret', ...options } = extra
    const root = options.root ?? join(this.#dir, name)
    const id = nodeId ?? this.#nodeIds.get(root) ?? (await loadOrCreateIdentity(join(root, 'identity'))).nodeId
    const server = createServer({
      root,
      listen: `${name}:1`,
      bootstrap: dial.map((d) => `${d}:1`),
      transport: memoryTransport({ network: this.network, clusterSecret, ...(id === undefined ? {} : { nodeId: id }) }),
      chunkSize: 64 * 1024,
      ...(process.env.DCAS_TEST_LOG === undefined ? {} : { logger: consoleLogger(name) }),
      ...options,
    })
    await server.start()
    this.#nodeIds.set(root, server.nodeId)
    this.servers.push(server)
    this.roots.push(root)
    return server
  }

  /** A, B (dials A), C (dials A and B), all connected to each other. */
  async triangle(options: NodeExtra = {}): Promise<[Server, Server, Server]> {
    const a = await this.add('a', [], options)
    const b = await this.add('b', ['a'], options)
    const c = await this.add('c', ['a', 'b'], options)
    await Promise.all([a.waitForPeers(2), b.waitForPeers(2), c.waitForPeers(2)])
    await Promise.all([a.waitForSync(), b.waitForSync(), c.waitForSync()])
    return [a, b, c]
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.servers.map((s) => s.close()))
  }
}

/** A temporary folder and a {@link Cluster} in it, new for each test of the file that calls {@link useCluster}. */
export interface ClusterFixture {
  readonly dir: string
  readonly cluster: Cluster
}

/** Gives each test of the calling file its own folder and cluster, closed and removed after the test. */
export function useCluster(): ClusterFixture {
  let current: { dir: { path: string; cleanup: () => Promise<void> }; cluster: Cluster } | undefined
  beforeEach(async () => {
    const dir = await tempDir()
    current = { dir, cluster: new Cluster(dir.path) }
  })
  afterEach(async () => {
    if (!current) return
    await current.cluster.close()
    await current.dir.cleanup()
    current = undefined
  })
  const now = (): NonNullable<typeof current> => {
    if (!current) throw new Error('useCluster() fixtures exist only inside a test')
    return current
  }
  return {
    get dir() {
      return now().dir.path
    },
    get cluster() {
      return now().cluster
    },
  }
}

/** The whole object under `key`, read from `server`. */
export const readAll = (server: Server, key: string, options?: Parameters<Server['read']>[1]): Promise<Buffer> => collect(server.read(key, options))

/** The `code` a promise rejects with, or undefined when it resolves. */
export const codeOf = (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => undefined,
    (err: { code?: string }) => err.code,
  )

/** The events {@link until} re-checks on by default: whatever changes membership, connections or placement. */
const CHANGES: Array<keyof ServerEvents> = ['node:joined', 'node:lost', 'node:returned', 'peer:connect', 'peer:disconnect', 'synced', 'repair:done']

/** Resolves once `check()` holds: checked now, then after each of `events` on any of `servers`. Never sleeps. */
export async function until(servers: Server[], check: () => boolean | Promise<boolean>, events: Array<keyof ServerEvents> = CHANGES): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let running = false
    let again = false
    const cleanup = (): void => {
      for (const s of servers) for (const e of events) s.off(e, recheck)
    }
    const recheck = (): void => {
      if (running) {
        again = true
        return
      }
      running = true
      void (async () => {
        try {
          do {
            again = false
            if (await check()) {
              cleanup()
              resolve()
              return
            }
          } while (again)
        } catch (err) {
          cleanup()
          reject(err instanceof Error ? err : new Error(String(err)))
        } finally {
          running = false
        }
      })()
    }
    for (const s of servers) for (const e of events) s.on(e, recheck)
    recheck()
  })
}

/** The events of child nodes on which {@link untilNodes} checks again. */
const NODE_EVENTS = ['node:joined', 'node:lost', 'node:returned', 'peer:connect', 'peer:disconnect', 'synced', 'repair:done']

/**
 * Resolves once `check` holds, checked at once, again on each event any of `nodes` passes on, and every
 * half second besides (one check at a time): a node's state may settle after the last event it sends.
 */
export function untilNodes(nodes: readonly NodeHandle[], check: () => Promise<boolean>): Promise<void> {
  return new Promise((resolve, reject) => {
    let busy = false
    let again = false
    const off = (): void => {
      clearInterval(poll)
      nodes.forEach((n) => NODE_EVENTS.forEach((e) => n.events.off(e, run)))
    }
    const run = (): void => {
      if (busy) return void (again = true)
      busy = true
      void (async () => {
        try {
          do {
            again = false
            if (await check()) return resolve(off())
          } while (again)
        } catch (err) {
          off()
          reject(err instanceof Error ? err : new Error(String(err)))
        } finally {
          busy = false
        }
      })()
    }
    nodes.forEach((n) => NODE_EVENTS.forEach((e) => n.events.on(e, run)))
    const poll = setInterval(run, 500)
    run()
  })
}
