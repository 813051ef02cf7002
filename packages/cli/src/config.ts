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
  /** Acknowledgements a put needs: `'all'` connected peers, or a number of peers. */
  writeQuorum: 'all' | number
}

/** What `dcas init` writes when told nothing else. */
export const DEFAULT_CONFIG: Readonly<NodeConfig> = {
  listen: '0.0.0.0:7420',
  peers: [],
  http: '127.0.0.1:7421',
  writeQuorum: 'all',
}

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
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`the write quorum must be "all" or a number of peers, got "${value}"`)
  return n
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
  return {
    listen: raw.listen as string,
    http: raw.http as string,
    peers: [...(raw.peers as string[])],
    writeQuorum: parseWriteQuorum(raw.writeQuorum as string | number),
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
