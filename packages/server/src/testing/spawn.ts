import { fork, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { fileURLToPath } from 'node:url'
import type { DeleteResult, DrainResult, ListEntry, ObjectStat, PeerInfo, PlacementStatus, ScrubResult, StoreResult } from '../server.js'
import { NODE_FLAGS } from '../node-flags.js'
import { encodeChildOptions, type ChildLogLevel, type ChildServerOptions, type EventMessage, type Request, type ResponseMessage } from './protocol.js'

/** An error a node child process answered with, keeping its `code` (and `details` for `ERR_QUORUM`). */
export class NodeRequestError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly details?: unknown,
  ) {
    super(message)
    this.name = 'NodeRequestError'
  }
}

/** Memory use of a node child process, in bytes. */
export interface NodeUsage {
  rss: number
  /** Peak resident set size since the process started. */
  maxRss: number
  heapUsed: number
}

/** A dcas server running in a child process, driven over IPC. */
export interface NodeHandle {
  readonly nodeId: string
  readonly address: string
  readonly pid: number
  /** `healed`, `peer:connect`, `peer:disconnect`, `synced`, `node:joined`, `node:lost`, `node:returned`, `repair:done` from the server, and `exit` (code, signal). */
  readonly events: EventEmitter
  /** Stores `size` bytes of {@link generateData}`(size, seed)` under `key`. */
  store(key: string, size: number, seed: string | number): Promise<StoreResult & { ms: number }>
  storeText(key: string, text: string): Promise<StoreResult>
  /** Reads `key` and returns the size and SHA-256 of what came back. */
  read(key: string, range?: { offset?: number; length?: number }): Promise<{ size: number; sha256: string; ms: number }>
  delete(key: string): Promise<DeleteResult>
  has(key: string): Promise<boolean>
  stat(key: string): Promise<ObjectStat>
  list(options?: { prefix?: string; limit?: number; after?: string }): Promise<ListEntry[]>
  peers(): Promise<PeerInfo[]>
  waitForPeers(count: number, timeoutMs?: number): Promise<void>
  waitForSync(): Promise<void>
  placementStatus(): Promise<PlacementStatus>
  /** Resolves once placement is settled (rejects after `timeoutMs`, when given). */
  waitForPlacement(timeoutMs?: number): Promise<void>
  /** Drains the node (see `Server.drain`; rejects after `timeoutMs`, when given). */
  drain(timeoutMs?: number): Promise<DrainResult>
  usage(): Promise<NodeUsage>
  /** Runs the server's scrub: every local object read back verified, then `audit` copies on peers challenged (default: the server's). */
  scrub(options?: { audit?: number }): Promise<ScrubResult>
  /** Graceful: closes the server, then the process exits. */
  close(): Promise<void>
  /** Sends `signal` (default SIGKILL) and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** How {@link spawnNode} runs the child process. */
export interface SpawnOptions {
  /** Node.js flags of the child, after {@link NODE_FLAGS} (which a `dcas` process starts with too). */
  execArgv?: string[]
  /** Where the child's stdout and stderr go: inherited (default), dropped, or an open file descriptor. */
  output?: 'inherit' | 'ignore' | number
  /** Writes the server's log lines at this level and above to the child's stderr (default: none). */
  logLevel?: ChildLogLevel
  /**
   * A command the child runs under, which then runs the node program with its arguments, such as
   * `['ip', 'netns', 'exec', 'ns1']` for a node in a network namespace. It must keep the IPC channel's file descriptor.
   */
  wrapper?: string[]
}

const entry = fileURLToPath(new URL('./node-main.js', import.meta.url))

/** Starts a dcas server in a child process with the TCP transport and resolves once it listens. */
export async function spawnNode(options: ChildServerOptions, spawnOptions: SpawnOptions = {}): Promise<NodeHandle> {
  const output = spawnOptions.output ?? 'inherit'
  // The child runs as the `dcas` command runs a node, with the same V8 flags.
  const execArgv = [...NODE_FLAGS, ...(spawnOptions.execArgv ?? [])]
  const child: ChildProcess = fork(entry, [], {
    env: { ...process.env, DCAS_NODE_OPTIONS: encodeChildOptions(options), ...(spawnOptions.logLevel === undefined ? {} : { DCAS_NODE_LOG: spawnOptions.logLevel }) },
    stdio: ['ignore', output, output, 'ipc'],
    serialization: 'advanced',
    ...(spawnOptions.wrapper === undefined || spawnOptions.wrapper.length === 0
      ? { execArgv }
      : { execPath: spawnOptions.wrapper[0]!, execArgv: [...spawnOptions.wrapper.slice(1), process.execPath, ...execArgv] }),
  })
  const events = new EventEmitter()
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  let nextId = 0
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      for (const p of pending.values()) p.reject(new NodeRequestError(`node process exited (${signal ?? code})`, 'ERR_NODE_EXITED'))
      pending.clear()
      events.emit('exit', code, signal)
      resolve({ code, signal })
    })
  })
  const ready = new Promise<{ nodeId: string; address: string }>((resolve, reject) => {
    child.on('message', (message: ResponseMessage | EventMessage) => {
      if ('id' in message) {
        const p = pending.get(message.id)
        pending.delete(message.id)
        if (p === undefined) return
        if (message.ok) p.resolve(message.result)
        else p.reject(new NodeRequestError(message.error.message, message.error.code, message.error.details))
      } else if (message.event === 'ready') {
        resolve({ nodeId: message.nodeId, address: message.address })
      } else if (message.event === 'fatal') {
        reject(new Error(`node failed to start: ${message.message}`))
      } else {
        events.emit(message.event, message.data)
      }
    })
    void exited.then(({ code, signal }) => reject(new Error(`node process exited before it was ready (${signal ?? code})`)))
  })
  const { nodeId, address } = await ready
  const call = <T>(request: Request): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (child.exitCode !== null || child.signalCode !== null || !child.connected) {
        reject(new NodeRequestError('node process is not running', 'ERR_NODE_EXITED'))
        return
      }
      const id = nextId++
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      child.send({ id, request })
    })
  return {
    nodeId,
    address,
    pid: child.pid!,
    events,
    exited,
    store: (key, size, seed) => call({ op: 'store', key, size, seed }),
    storeText: (key, text) => call({ op: 'storeText', key, text }),
    read: (key, range = {}) => call({ op: 'read', key, ...range }),
    delete: (key) => call({ op: 'delete', key }),
    has: (key) => call({ op: 'has', key }),
    stat: (key) => call({ op: 'stat', key }),
    list: (opts = {}) => call({ op: 'list', ...opts }),
    peers: () => call({ op: 'peers' }),
    waitForPeers: (count, timeout) => call({ op: 'waitForPeers', count, ...(timeout === undefined ? {} : { timeout }) }),
    waitForSync: () => call({ op: 'waitForSync' }),
    placementStatus: () => call({ op: 'placementStatus' }),
    waitForPlacement: (timeout) => call({ op: 'waitForPlacement', ...(timeout === undefined ? {} : { timeout }) }),
    drain: (timeout) => call({ op: 'drain', ...(timeout === undefined ? {} : { timeout }) }),
    usage: () => call({ op: 'usage' }),
    scrub: (opts = {}) => call({ op: 'scrub', ...(opts.audit === undefined ? {} : { audit: opts.audit }) }),
    close: async () => {
      await call({ op: 'close' }).catch(() => {})
      await exited
    },
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      await exited
    },
  }
}
