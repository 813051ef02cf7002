// The nodes of one run, each a real server in its own process, and the proxies between them.
// Node i dials every node j < i (the original topology: B dials A, C dials A and B), always
// through the proxy of link i->j, so that a restarted node on a new port stays reachable and
// every byte between nodes crosses a proxy. One node may live on a small tmpfs (disk full).
import { spawnSync } from 'node:child_process'
import { mkdir, open, readdir, rm, statfs } from 'node:fs/promises'
import { closeSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { spawnNode, type ChildLogLevel, type NodeHandle } from '@dcas/server/testing'
import { FaultProxy } from './proxy.js'
import type { Report } from './report.js'

export interface ClusterConfig {
  dir: string
  nodes: number
  secret: string
  chunkSize: number
  writeQuorum: 'all' | number
  requestTimeout: number
  canaries: Buffer[]
  /** The node whose root is a tmpfs of this many bytes (disk full). */
  tmpfs?: { node: number; bytes: number }
  logLevel: ChildLogLevel
  /** Peer copies per object (the server's default when absent). */
  replicas?: number
  /** How long a node may be unseen before it is lost (the server's default when absent). */
  lostAfter?: number
}

const MiB = 1024 * 1024

/** One node: its data directory and, while it runs, its process. */
export class NodeSlot {
  handle: NodeHandle | undefined
  nodeId = ''
  /** Set before we kill or close it: its exit is then no crash. */
  expectExit = false
  restarts = 0
  /** The workload's clock when this node last lost data on purpose (local loss): older acknowledgements no longer bind it. */
  lossClock = 0
  /** Destroyed and removed from the cluster for good. */
  gone = false
  #waiters: Array<(h: NodeHandle) => void> = []

  constructor(
    readonly index: number,
    readonly name: string,
    readonly root: string,
    readonly logFile: string,
  ) {}

  get up(): boolean {
    return this.handle !== undefined
  }

  /** The running node, once it runs. */
  async waitUp(): Promise<NodeHandle> {
    if (this.handle !== undefined) return this.handle
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  setUp(handle: NodeHandle): void {
    this.handle = handle
    for (const w of this.#waiters.splice(0)) w(handle)
  }
}

/** A link: node `from` dials node `to` through `proxy`. */
export interface Link {
  from: number
  to: number
  proxy: FaultProxy
}

export class Cluster {
  readonly slots: NodeSlot[] = []
  /** Told whenever any node declares another lost (copies then move). */
  onNodeLost: (() => void) | undefined
  readonly links: Link[] = []
  #mounted: string | undefined
  #closing = false
  #ballast = false

  constructor(
    readonly config: ClusterConfig,
    readonly report: Report,
  ) {}

  slot(i: number): NodeSlot {
    return this.slots[i]!
  }

  /** The nodes not removed for good. */
  get live(): NodeSlot[] {
    return this.slots.filter((s) => !s.gone)
  }

  /** `n<i>` for a node id (for logs). */
  nameOf(nodeId: string): string {
    return this.slots.find((s) => s.nodeId === nodeId)?.name ?? nodeId.slice(0, 12)
  }

  linksOf(i: number): Link[] {
    return this.links.filter((l) => l.from === i || l.to === i)
  }

  async start(): Promise<void> {
    const { dir, nodes } = this.config
    await mkdir(join(dir, 'logs'), { recursive: true })
    for (let i = 0; i < nodes; i++) {
      const name = `n${i}`
      const slot = new NodeSlot(i, name, join(dir, name), join(dir, 'logs', `${name}.log`))
      this.slots.push(slot)
      await mkdir(slot.root, { recursive: true })
      if (this.config.tmpfs?.node === i) this.#mount(slot.root, this.config.tmpfs.bytes)
    }
    for (let i = 0; i < nodes; i++) {
      for (let j = 0; j < i; j++) {
        const proxy = new FaultProxy(`n${i}->n${j}`, this.slot(j).handle!.address, this.config.canaries)
        await proxy.listen()
        this.links.push({ from: i, to: j, proxy })
      }
      await this.#spawn(this.slot(i))
    }
    await this.waitConnected(60_000)
  }

  #mount(root: string, bytes: number): void {
    const res = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', root], { encoding: 'utf8' })
    if (res.status !== 0) {
      this.report.say(`tmpfs not mountable (${res.stderr.trim() || res.status}): disk-full faults are skipped in this run`)
      this.config.tmpfs = undefined
      return
    }
    this.#mounted = root
    this.report.log(`${root} is a tmpfs of ${Math.round(bytes / MiB)} MiB`)
  }

  /** Whether disk full can be injected. */
  get canFillDisk(): boolean {
    return this.#mounted !== undefined
  }

  get diskFullNode(): number | undefined {
    return this.#mounted === undefined ? undefined : this.config.tmpfs?.node
  }

  async #spawn(slot: NodeSlot): Promise<void> {
    const bootstrap = this.links.filter((l) => l.from === slot.index).map((l) => l.proxy.address)
    const fd = openSync(slot.logFile, 'a')
    let handle: NodeHandle
    try {
      handle = await spawnNode(
        {
          root: slot.root,
          listen: '127.0.0.1:0',
          bootstrap,
          clusterSecret: this.config.secret,
          chunkSize: this.config.chunkSize,
          writeQuorum: this.config.writeQuorum,
          requestTimeout: this.config.requestTimeout,
          // Nodes reach each other only through the proxies they are given: none dials an address learnt from a peer record.
          announce: [],
          ...(this.config.replicas === undefined ? {} : { replicas: this.config.replicas }),
          ...(this.config.lostAfter === undefined ? {} : { lostAfter: this.config.lostAfter }),
        },
        { output: fd, logLevel: this.config.logLevel },
      )
    } finally {
      closeSync(fd)
    }
    slot.nodeId = handle.nodeId
    slot.expectExit = false
    handle.events.on('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      if (slot.handle === handle) slot.handle = undefined
      if (!slot.expectExit && !this.#closing) this.report.violation('crash', `${slot.name} exited on its own (${signal ?? `code ${code}`}); see ${slot.logFile}`)
    })
    handle.events.on('healed', () => this.report.extra.healed++)
    handle.events.on('node:lost', (e: { nodeId: string }) => {
      this.report.log(`${slot.name} declared ${this.nameOf(e.nodeId)} lost`)
      this.onNodeLost?.()
    })
    for (const l of this.links) if (l.to === slot.index) l.proxy.setTarget(handle.address)
    slot.setUp(handle)
    this.report.log(`${slot.name} up at ${handle.address} (pid ${handle.pid}, node ${handle.nodeId.slice(0, 12)})`)
  }

  /** kill -9. */
  async kill(i: number): Promise<void> {
    const slot = this.slot(i)
    const handle = slot.handle
    if (handle === undefined) return
    slot.expectExit = true
    slot.handle = undefined
    await handle.kill('SIGKILL')
    this.report.log(`${slot.name} killed`)
  }

  readonly #restarts = new Map<number, Promise<void>>()

  /** Starts a stopped node again on its data directory; `loss` first removes its blobs, or all but `identity/`. */
  async restart(i: number, loss?: 'blobs' | 'all-but-identity'): Promise<void> {
    const running = this.#restarts.get(i)
    if (running !== undefined) return running
    const p = this.#restart(i, loss).finally(() => this.#restarts.delete(i))
    this.#restarts.set(i, p)
    return p
  }

  async #restart(i: number, loss?: 'blobs' | 'all-but-identity'): Promise<void> {
    const slot = this.slot(i)
    if (slot.up || slot.gone) return
    if (loss === 'blobs') await rm(join(slot.root, 'blobs'), { recursive: true, force: true })
    if (loss === 'all-but-identity') {
      for (const entry of await readdir(slot.root)) if (entry !== 'identity') await rm(join(slot.root, entry), { recursive: true, force: true })
    }
    slot.restarts++
    await this.#spawn(slot)
  }

  /** Every node up and connected to every other. */
  async waitConnected(timeoutMs: number): Promise<void> {
    const live = this.live
    await Promise.all(live.map(async (s) => (await s.waitUp()).waitForPeers(live.length - 1, timeoutMs)))
  }

  /** Catch-up has run on every node with every connected peer. */
  async waitSynced(): Promise<void> {
    await Promise.all(this.live.map(async (s) => (await s.waitUp()).waitForSync()))
  }

  /** Every node's objects are on their placed holders, nothing left to copy or release. */
  async waitPlaced(timeoutMs: number): Promise<void> {
    await Promise.all(this.live.map(async (s) => (await s.waitUp()).waitForPlacement(timeoutMs)))
  }

  /** Destroys node `i` for good: killed, its data directory removed, never restarted. */
  async loseForGood(i: number): Promise<void> {
    const slot = this.slot(i)
    slot.gone = true
    await this.kill(i)
    await rm(slot.root, { recursive: true, force: true })
    this.report.log(`${slot.name} destroyed for good`)
  }

  /** A new node: it dials every node there is through a proxy of its own per link. */
  async addNode(): Promise<NodeSlot> {
    const index = this.slots.length
    const name = `n${index}`
    const slot = new NodeSlot(index, name, join(this.config.dir, name), join(this.config.dir, 'logs', `${name}.log`))
    this.slots.push(slot)
    await mkdir(slot.root, { recursive: true })
    for (const other of this.live) {
      if (other === slot) continue
      const proxy = new FaultProxy(`${name}->${other.name}`, (await other.waitUp()).address, this.config.canaries)
      await proxy.listen()
      this.links.push({ from: index, to: other.index, proxy })
    }
    await this.#spawn(slot)
    return slot
  }

  /** Disk full: fills the tmpfs node's disk, leaving `slack` bytes. */
  async fillDisk(slack: number): Promise<void> {
    const node = this.diskFullNode
    if (node === undefined) return
    const path = join(this.slot(node).root, 'ballast')
    const fh = await open(path, 'a')
    try {
      const { bavail, bsize } = await statfs(this.slot(node).root)
      let left = bavail * bsize - slack
      const zeros = Buffer.alloc(8 * MiB)
      while (left > 0) {
        const n = Math.min(left, zeros.length)
        try {
          await fh.write(zeros, 0, n)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break
          throw err
        }
        left -= n
      }
    } finally {
      await fh.close()
    }
    this.#ballast = true
    this.report.log(`n${node}'s disk is full (${slack} bytes left)`)
  }

  async freeDisk(): Promise<void> {
    const node = this.diskFullNode
    if (node === undefined || !this.#ballast) return
    await rm(join(this.slot(node).root, 'ballast'), { force: true })
    this.#ballast = false
    this.report.log(`n${node}'s disk has room again`)
  }

  /** Closes every node gracefully (a close that fails is a finding), the proxies, and the tmpfs (copied to disk first when `preserve`). */
  async close(preserve = false): Promise<void> {
    await Promise.allSettled([...this.#restarts.values()])
    await Promise.all(
      this.slots.map(async (s) => {
        const h = s.handle
        if (h === undefined) return
        s.expectExit = true
        const exited = h.exited
        await h.close()
        const { code, signal } = await exited
        if (code !== 0) this.report.violation('crash', `${s.name} did not close cleanly (${signal ?? `code ${code}`}); see ${s.logFile}`)
      }),
    )
    this.#closing = true
    await Promise.all(this.links.map((l) => l.proxy.close()))
    this.unmount(preserve)
  }

  /** Kills whatever still runs (after a failure), keeping the tmpfs node's data. */
  async abort(): Promise<void> {
    this.#closing = true
    await Promise.allSettled(this.slots.map((s) => s.handle?.kill('SIGKILL') ?? Promise.resolve()))
    await Promise.allSettled(this.links.map((l) => l.proxy.close()))
    this.unmount(true)
  }

  /** Unmounts the tmpfs; with `preserve`, its files are first copied to `<root>.saved` for a post-mortem. */
  unmount(preserve = false): void {
    if (this.#mounted === undefined) return
    if (preserve) spawnSync('cp', ['-a', this.#mounted, `${this.#mounted}.saved`])
    spawnSync('umount', ['-l', this.#mounted])
    this.#mounted = undefined
  }
}
