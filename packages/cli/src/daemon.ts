// `dcas serve` as a library: the node, its HTTP API on 127.0.0.1, and `DIR/api.json`.
import { randomBytes } from 'node:crypto'
import { unlink } from 'node:fs/promises'
import { resolve } from 'node:path'
import { createServer, type BehindEvent, type DialErrorEvent, type PeerInfo, type ScrubResult, type Server } from '@dcas/server'
import { parseAddress, parseHttpAddress, parseWriteQuorum, paths, type NodeConfig, type PlacementSettings } from './config.js'
import { AlreadyRunningError, ListenError, codeOf, messageOf } from './errors.js'
import { alive, markStarting, readApiFile, type ApiFile } from './api-file.js'
import { writeFileAtomic } from './files.js'
import { createApi } from './http.js'
import { loadNode } from './init.js'
import { silentLogger, type Logger } from './logger.js'
import { createMetrics, type NodeMetrics } from './metrics.js'
import { diskUsage, replicaHealth } from './health.js'
import { startS3 } from './s3.js'
import type { NodeStatus, PeerStatus } from './status.js'
import { VERSION } from './version.js'


/** Options of {@link startDaemon}; each one overrides `DIR/config.json`. */
export interface DaemonOptions extends PlacementSettings {
  /** An initialised data directory (`dcas init`). */
  root: string
  /** Where to listen for peers, `host:port`. */
  listen?: string
  /** Peers to dial (replace the config's list). */
  peers?: string[]
  /** The HTTP API's address, `127.0.0.1:PORT` (port 0 picks one). */
  http?: string
  /** A pino logger; default silent. */
  logger?: Logger
  /** The bearer token (default: 32 random bytes, base64url). */
  token?: string
  /** Serve the S3 gateway on this `host:port` (port 0 picks one; `api.json` tells which). */
  s3?: string
}

/** A running node with its HTTP API. */
export interface Daemon {
  readonly root: string
  readonly server: Server
  readonly nodeId: string
  /** Where the node listens for peers. */
  readonly address: string
  /** The HTTP API's URL, `http://127.0.0.1:PORT`. */
  readonly url: string
  readonly token: string
  /** The S3 gateway's URL, when it runs (`s3` option). */
  readonly s3Url: string | undefined
  readonly metrics: NodeMetrics
  /** The node's status, as `GET /v1/status` answers it. */
  status(): Promise<NodeStatus>
  /** Stops the HTTP API, finishes in-flight stores, closes the node and removes `api.json`. */
  close(): Promise<void>
  /** Resolves once the daemon has closed (after {@link Daemon.close}, or by itself once a drain finished). */
  readonly closed: Promise<void>
}

/** Whether the node `api.json` describes still answers with that token. */
async function answers(api: ApiFile): Promise<boolean> {
  try {
    const res = await fetch(`${api.url}/v1/status`, { headers: { authorization: `Bearer ${api.token}` }, signal: AbortSignal.timeout(2_000) })
    await res.body?.cancel()
    return res.ok
  } catch {
    return false
  }
}

/**
 * Starts the node of an initialised data directory and its HTTP API on 127.0.0.1, then
 * writes `DIR/api.json` (URL and a fresh bearer token, mode 0600). Refuses when another
 * node answers for the same directory.
 */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const root = resolve(options.root)
  const log = options.logger ?? silentLogger
  const { config } = await loadNode(root)
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<DaemonOptions>
  const settings: NodeConfig = {
    ...config,
    ...given,
    listen: options.listen ?? config.listen,
    peers: options.peers ?? config.peers,
    http: options.http ?? config.http,
    writeQuorum: options.writeQuorum === undefined ? config.writeQuorum : parseWriteQuorum(options.writeQuorum),
  }
  parseAddress(settings.listen, '--listen')
  for (const p of settings.peers) parseAddress(p, '--peer')
  const http = parseHttpAddress(settings.http)

  const previous = await readApiFile(root)
  if (previous !== undefined && previous.pid !== process.pid && alive(previous.pid) && (await answers(previous))) {
    throw new AlreadyRunningError(`a dcas node is already running for ${root} (pid ${previous.pid}, ${previous.url})`, { hint: `stop it first (kill ${previous.pid}), or use it: dcas status --root ${root}` })
  }

  const startedAt = Date.now()
  // Commands run while the node starts wait for it (`dcas serve & dcas put …` works).
  const clearStarting = await markStarting(root, startedAt)
  const { zone, capacity, announce, lostAfter, repairRate } = settings
  const server = createServer({
    root,
    listen: settings.listen,
    bootstrap: settings.peers,
    writeQuorum: settings.writeQuorum,
    replicas: settings.replicas,
    ...(zone === undefined ? {} : { zone }),
    ...(capacity === undefined ? {} : { capacity }),
    ...(announce === undefined ? {} : { announce }),
    ...(lostAfter === undefined ? {} : { lostAfter }),
    ...(repairRate === undefined ? {} : { repairRate }),
    logger: log.child({ component: 'node' }),
  })
  server.on('node:lost', (e) => log.warn({ peer: e.nodeId, lastSeen: new Date(e.lastSeen).toISOString() }, `node ${e.nodeId.slice(0, 12)} is lost: unseen for longer than lostAfter; its copies are being made again on other nodes`))
  server.on('node:returned', (e) => log.info({ peer: e.nodeId }, `node ${e.nodeId.slice(0, 12)} is back; the copies made in its stead are released`))
  server.on('repair:done', (e) => log.info(e, 'placement settled: every object is on its placed holders'))
  const dialErrors = new Map<string, NonNullable<PeerStatus['error']>>()
  server.on('dial:error', (e: DialErrorEvent) => {
    const last = dialErrors.get(e.address)
    dialErrors.set(e.address, { ...(e.code === undefined ? {} : { code: e.code }), message: e.message, at: Date.now() })
    if (last?.code === e.code && last?.message === e.message) return // said once is enough; it retries with backoff
    if (e.code === 'ERR_PEER_UNAUTHORIZED') {
      log.error({ peer: e.address, code: e.code, err: e.message }, `peer ${e.address} refused this node: it does not share this node's cluster secret. Give both nodes the same one (dcas init --join <the other node's DIR/identity/cluster-secret>), or fix --peer`)
    } else {
      log.warn({ peer: e.address, code: e.code, err: e.message }, `cannot reach peer ${e.address}; retrying with backoff`)
    }
  })
  server.on('peer:connect', (p: PeerInfo) => {
    if (p.address !== undefined) dialErrors.delete(p.address)
  })
  // A connected peer that missed background work, and why, until it caught up or went away.
  const behind = new Map<string, NonNullable<PeerStatus['behind']>>()
  server.on('peer:behind', (e: BehindEvent) => behind.set(e.nodeId, { message: e.message, retryIn: e.retryIn, at: Date.now() }))
  server.on('synced', (e: { nodeId: string }) => behind.delete(e.nodeId))
  server.on('peer:disconnect', (p: PeerInfo) => behind.delete(p.nodeId))
  try {
    await server.start()
  } catch (err) {
    await server.close().catch(() => {})
    await clearStarting()
    if (['ERR_ADDRESS_IN_USE', 'ERR_LISTEN_FAILED', 'EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL'].includes(codeOf(err) ?? '')) throw new ListenError(`cannot listen for peers on ${settings.listen}: ${messageOf(err)}`, { cause: err, hint: 'pick another address with --listen HOST:PORT' })
    throw err
  }

  const token = options.token ?? randomBytes(32).toString('base64url')
  const metrics = createMetrics(server)
  let lastScrub: NodeStatus['lastScrub']
  let url = ''
  const peers = (): PeerStatus[] => {
    const known = server.peers()
    const list: PeerStatus[] = known.map((p) => {
      const error = p.connected || p.address === undefined ? undefined : dialErrors.get(p.address)
      const { nodeId, address, connected, state, zone, capacity, lastSeen } = p
      const late = p.connected ? behind.get(p.nodeId) : undefined
      return { nodeId, ...(address === undefined ? {} : { address }), connected, ...(error === undefined ? {} : { error }), ...(late === undefined ? {} : { behind: late }), ...(state === undefined ? {} : { state }), ...(zone === undefined ? {} : { zone }), ...(capacity === undefined ? {} : { capacity }), ...(lastSeen === undefined ? {} : { lastSeen }) }
    })
    for (const address of settings.peers) {
      if (known.some((p) => p.address === address)) continue
      const error = dialErrors.get(address)
      list.push({ address, connected: false, ...(error === undefined ? {} : { error }) })
    }
    return list
  }
  const status = async (): Promise<NodeStatus> => {
    const memory = process.memoryUsage()
    const replication = await server.placementStatus()
    return {
      nodeId: server.nodeId,
      address: server.address,
      api: url,
      root,
      pid: process.pid,
      version: VERSION,
      uptime: Math.round((Date.now() - startedAt) / 1000),
      peers: peers(),
      replication,
      objects: await replicaHealth(server, replication.target),
      disk: await diskUsage(root),
      memory: { rss: memory.rss, maxRss: process.resourceUsage().maxRSS * 1024, heapUsed: memory.heapUsed },
      healed: metrics.healed,
      ...(lastScrub === undefined ? {} : { lastScrub }),
    }
  }
  const api = createApi({
    server,
    token,
    metrics,
    status,
    peers,
    logger: log.child({ component: 'http' }),
    onScrub: (r: ScrubResult) => (lastScrub = { ...r, at: Date.now() }),
    // A drained node has nothing left to do here: it stops once the answer is out.
    onDrained: () => void close(),
  })
  try {
    await api.listen({ host: http.host, port: http.port })
  } catch (err) {
    metrics.close()
    await server.close().catch(() => {})
    await clearStarting()
    throw new ListenError(`cannot serve the HTTP API on ${settings.http}: ${messageOf(err)}`, { cause: err, hint: 'pick another port with --http 127.0.0.1:PORT (0 picks a free one)' })
  }
  const bound = api.server.address()
  url = `http://127.0.0.1:${typeof bound === 'object' && bound !== null ? bound.port : http.port}`
  let s3: Awaited<ReturnType<typeof startS3>> | undefined
  const apiFile: ApiFile = { url, token, pid: process.pid, nodeId: server.nodeId, address: server.address, startedAt }
  try {
    if (options.s3 !== undefined) {
      s3 = await startS3(root, server, options.s3, log.child({ component: 's3' }))
      apiFile.s3 = s3.entry
    }
    await writeFileAtomic(paths(root).api, `${JSON.stringify(apiFile, null, 2)}\n`)
  } catch (err) {
    metrics.close()
    await Promise.allSettled([api.close(), s3?.gateway.close(), server.close()])
    await clearStarting()
    throw err
  }
  log.info({ nodeId: server.nodeId, address: server.address, api: url, ...(s3 === undefined ? {} : { s3: s3.entry.url }), root, peers: settings.peers }, 'ready')

  let closing: Promise<void> | undefined
  let closed!: () => void
  const whenClosed = new Promise<void>((resolve) => (closed = resolve))
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      log.info({}, 'shutting down')
      // New requests get 503 at once; in-flight stores finish, reads fail with ERR_CLOSED.
      const httpClosed = api.close()
      await s3?.gateway.close()
      await server.close()
      await httpClosed
      metrics.close()
      const current = await readApiFile(root)
      if (current?.pid === process.pid && current.token === token) await unlink(paths(root).api).catch(() => {})
      log.info({}, 'stopped')
      closed()
    })())
  return { root, server, nodeId: server.nodeId, address: server.address, url, token, s3Url: s3?.entry.url, metrics, status, close, closed: whenClosed }
}
