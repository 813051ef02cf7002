// The files `dcas` keeps in a node's data directory, beside what @dcas/server keeps there,
// and the node's config: read, checked field by field, and written once by `dcas init`.
import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import { ConfigError, UsageError } from './errors.js'

/** Where things live in a data directory. */
export const paths = (root: string) => ({
  config: join(root, 'config.json'),
  api: join(root, 'api.json'),
  identity: join(root, 'identity'),
  ageIdentity: join(root, 'identity', 'age-identity.txt'),
  clusterSecret: join(root, 'identity', 'cluster-secret'),
  tlsKey: join(root, 'identity', 'key.pem'),
  tlsCertificate: join(root, 'identity', 'cert.pem'),
  s3Credentials: join(root, 'identity', 's3-credentials.json'),
})

/**
 * The data directory used when neither `--root` nor `DCAS_ROOT` names one: `$XDG_DATA_HOME/dcas`,
 * that is `~/.local/share/dcas` unless `XDG_DATA_HOME` is set (to an absolute path, as the XDG spec says).
 */
export function defaultRoot(env: Record<string, string | undefined>): string {
  const data = env.XDG_DATA_HOME
  if (data !== undefined && isAbsolute(data)) return join(data, 'dcas')
  return join(env.HOME !== undefined && isAbsolute(env.HOME) ? env.HOME : homedir(), '.local', 'share', 'dcas')
}

/** The log levels `dcas serve --log-level` accepts (pino's). */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const

/** A node's settings, in `DIR/config.json`; `dcas serve` options override them. */
export interface NodeConfig {
  /** `host:port` the node listens on for peers. */
  listen: string
  /** Peer addresses (`host:port`) the node dials and keeps dialling. */
  peers: string[]
  /** `127.0.0.1:port` of the HTTP API (port 0 picks one; `api.json` tells which). */
  http: string
  /** Acknowledgements of placed holders a put needs: a number (0: local only), or `'all'` of them. */
  writeQuorum: 'all' | number
  /** Peer copies of each object besides this node's own: a number, or `'all'` peers. */
  replicas: 'all' | number
  /** This node's failure-domain label: copies go to distinct zones while there are enough. */
  zone?: string
  /** Bytes this node offers to hold for other nodes (its weight in placement). */
  capacity?: number
  /** Addresses other nodes may dial this node at (default: the listen address). */
  announce?: string[]
  /** Milliseconds after which a node unseen is declared lost and its copies made again elsewhere. */
  lostAfter?: number
  /** Bytes per second background copies (repair, rebalance, catch-up) may send. */
  repairRate?: number
}

/** What `dcas init` writes when told nothing else. */
export const DEFAULT_CONFIG: Readonly<NodeConfig> = {
  listen: '0.0.0.0:7420',
  peers: [],
  http: '127.0.0.1:7421',
  writeQuorum: 1,
  replicas: 2,
}

/** The settings of a node's place in the cluster, which `dcas init` and `dcas serve` both take. */
export type PlacementSettings = Partial<Pick<NodeConfig, 'writeQuorum' | 'replicas' | 'zone' | 'capacity' | 'announce' | 'lostAfter' | 'repairRate'>>

/** Splits `host:port` (or `[v6]:port`); throws `ERR_USAGE` naming `what` when it is not one. */
export function parseAddress(value: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(value)
  const port = Number(m?.[3])
  if (m === null || port > 65535) throw new UsageError(`${what} must be HOST:PORT, got "${value}"`)
  return { host: m[1] ?? m[2]!, port }
}

/** The HTTP API's address: `127.0.0.1:PORT` or a bare `PORT`; it never listens anywhere else. */
export function parseHttpAddress(value: string): { host: '127.0.0.1'; port: number } {
  const address = /^\d{1,5}$/.test(value) ? `127.0.0.1:${value}` : value
  const { host, port } = parseAddress(address, '--http')
  if (host !== '127.0.0.1') throw new UsageError(`the HTTP API listens on 127.0.0.1 only, not on "${host}"`, { hint: `use --http 127.0.0.1:${port}` })
  return { host, port }
}

/** `'all'` or a non-negative integer. */
export function parseWriteQuorum(value: string | number): 'all' | number {
  if (value === 'all') return 'all'
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : NaN
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`the write quorum must be "all" or a number of placed holders (0: this node only), got "${value}"`)
  return n
}

/** `'all'` or a non-negative integer number of peer copies. */
export function parseReplicas(value: string | number): 'all' | number {
  if (value === 'all') return 'all'
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : NaN
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`replicas must be "all" or a number of peer copies, got "${value}"`)
  return n
}

const UNIT: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, p: 1e15, ki: 2 ** 10, mi: 2 ** 20, gi: 2 ** 30, ti: 2 ** 40, pi: 2 ** 50 }

/** Bytes: a whole number, or with a unit (`500G`, `4TB`, `2TiB`, `64MiB`). */
export function parseBytes(value: string | number, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]i?)?b?$/i.exec(String(value).trim())
  const n = m === null ? NaN : Math.round(Number(m[1]) * UNIT[(m[2] ?? '').toLowerCase()]!)
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${what} must be a number of bytes (like 500G, 4TiB or 1048576), got "${value}"`)
  return n
}

/** Milliseconds from `1500ms`, `90s`, `30m`, `2h` or a bare number of seconds. */
export function parseDuration(value: string | number, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(value).trim())
  const ms = m === null ? NaN : Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'])
  if (!Number.isSafeInteger(ms) || ms < 1) throw new UsageError(`${what} must be a duration like 90s, 30m or 2h, got "${value}"`)
  return ms
}

/** A zone label: 1 to 64 of letters, digits, `.`, `_`, `:` and `-`, starting with a letter or digit. */
export function parseZone(value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/.test(value)) throw new UsageError(`a zone is 1 to 64 of letters, digits, ".", "_", ":" and "-", got "${value}"`)
  return value
}

/** Checks a parsed config object field by field; throws `ERR_CONFIG` naming the first bad one. */
export function checkConfig(value: unknown, source: string): NodeConfig {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${source} must hold a JSON object`)
  const raw = { ...DEFAULT_CONFIG, ...(value as Partial<Record<keyof NodeConfig, unknown>>) }
  const field = (name: string, check: () => void): void => {
    try {
      check()
    } catch (err) {
      throw new ConfigError(`${source}: "${name}" ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    }
  }
  const isAddress = (v: unknown, what: string): string => {
    if (typeof v !== 'string') throw new Error(`must be a "host:port" string`)
    parseAddress(v, what)
    return v
  }
  field('listen', () => isAddress(raw.listen, 'listen'))
  field('http', () => {
    if (typeof raw.http !== 'string') throw new Error('must be a "127.0.0.1:port" string')
    parseHttpAddress(raw.http)
  })
  field('peers', () => {
    if (!Array.isArray(raw.peers)) throw new Error('must be a list of "host:port" strings')
    for (const p of raw.peers) isAddress(p, 'a peer')
  })
  field('writeQuorum', () => {
    if (typeof raw.writeQuorum !== 'string' && typeof raw.writeQuorum !== 'number') throw new Error('must be "all" or a number')
    parseWriteQuorum(raw.writeQuorum)
  })
  field('replicas', () => {
    if (typeof raw.replicas !== 'string' && typeof raw.replicas !== 'number') throw new Error('must be "all" or a number')
    parseReplicas(raw.replicas)
  })
  const optional = <K extends keyof NodeConfig>(name: K, check: (v: unknown) => NodeConfig[K]): Partial<NodeConfig> => {
    if (raw[name] === undefined) return {}
    let value!: NodeConfig[K]
    field(name, () => (value = check(raw[name])))
    return { [name]: value }
  }
  const count = (what: string) => (v: unknown): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`must be a whole number of ${what}`)
    return v
  }
  return {
    listen: raw.listen as string,
    http: raw.http as string,
    peers: [...(raw.peers as string[])],
    writeQuorum: parseWriteQuorum(raw.writeQuorum as string | number),
    replicas: parseReplicas(raw.replicas as string | number),
    ...optional('zone', (v) => parseZone(String(v))),
    ...optional('capacity', count('bytes')),
    ...optional('announce', (v) => {
      if (!Array.isArray(v)) throw new Error('must be a list of "host:port" strings')
      return v.map((a) => isAddress(a, 'an announced address'))
    }),
    ...optional('lostAfter', count('milliseconds')),
    ...optional('repairRate', count('bytes per second')),
  }
}

/** Reads and checks `DIR/config.json`; `undefined` when there is none. */
export async function readConfig(root: string): Promise<NodeConfig | undefined> {
  const file = paths(root).config
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`${file} is not valid JSON: ${(err as Error).message}`, { cause: err, hint: 'fix the file by hand, or move it away and run dcas init again' })
  }
  return checkConfig(parsed, file)
}
