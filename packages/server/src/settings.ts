// The server's options: checked once, and what follows from them: the TCP transport when none is
// given, and the addresses this node announces in its peer record.
import { networkInterfaces } from 'node:os'
import { clusterSecretWarning, parseAddress, tcpTransport, type NodeIdentity, type Transport } from '@dcas/p2p'
import { InvalidOptionsError } from './errors.js'
import type { Logger } from './logger.js'
import { isRecordAddress, isZone, MAX_RECORD_ADDRESSES } from './peer-record.js'
import { assertValidLimits } from './replica-space.js'
import { loadClusterSecret } from './secrets.js'
import type { ServerOptions } from './types.js'

/** Throws `ERR_INVALID_OPTIONS` for the first option out of range. */
export function checkServerOptions(options: ServerOptions): void {
  if (typeof options?.root !== 'string' || options.root.length === 0) throw new InvalidOptionsError('root (the data directory) is required')
  const replicas = options.replicas ?? 2
  if (replicas !== 'all' && (!Number.isSafeInteger(replicas) || replicas < 0)) throw new InvalidOptionsError(`replicas must be 'all' or a non-negative integer, got ${String(replicas)}`)
  const quorum = options.writeQuorum ?? 1
  if (quorum !== 'all' && (!Number.isSafeInteger(quorum) || quorum < 0)) throw new InvalidOptionsError(`writeQuorum must be 'all' or a non-negative integer, got ${String(quorum)}`)
  if (quorum !== 'all' && replicas !== 'all' && options.placement === undefined && quorum > replicas) throw new InvalidOptionsError(`writeQuorum (${quorum}) cannot exceed replicas (${replicas})`)
  if (options.zone !== undefined && !isZone(options.zone)) throw new InvalidOptionsError(`zone must be 1 to 64 of A-Z a-z 0-9 . _ : - (starting with a letter or digit), got ${JSON.stringify(options.zone)}`)
  if (options.capacity !== undefined && (!Number.isSafeInteger(options.capacity) || options.capacity < 0)) throw new InvalidOptionsError(`capacity must be a non-negative integer of bytes, got ${String(options.capacity)}`)
  if (options.announce !== undefined && (!Array.isArray(options.announce) || options.announce.length > MAX_RECORD_ADDRESSES || !options.announce.every(isRecordAddress))) {
    throw new InvalidOptionsError(`announce must be a list of at most ${MAX_RECORD_ADDRESSES} "host:port" addresses`)
  }
  for (const [name, value, min] of [['lostAfter', options.lostAfter, 1], ['repairConcurrency', options.repairConcurrency, 1], ['maxConnections', options.maxConnections, 1]] as const) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < min)) throw new InvalidOptionsError(`${name} must be an integer of at least ${min}, got ${String(value)}`)
  }
  if (options.repairRate !== undefined && !(options.repairRate > 0)) throw new InvalidOptionsError(`repairRate must be a positive number of bytes per second (or Infinity), got ${String(options.repairRate)}`)
  assertValidLimits(options.holderLimits)
}

/** The TCP transport of a node with no `transport` option: TLS with its identity, admission with the cluster secret. */
export async function nodeTcpTransport(options: ServerOptions, identityDir: string, identity: NodeIdentity, log: Logger): Promise<Transport> {
  const clusterSecret = await loadClusterSecret(identityDir, options.clusterSecret)
  const weak = clusterSecretWarning(clusterSecret)
  if (weak !== undefined) log.warn({}, weak)
  const host = parseAddress(options.listen ?? '127.0.0.1:0', { allowPortZero: true }).host
  if (!['127.0.0.1', '::1', 'localhost'].includes(host)) {
    log.warn({ listen: options.listen }, 'the peer port is open beyond this machine: anyone who can reach it may try to join (admission needs the cluster secret)')
  }
  return tcpTransport({
    identity,
    clusterSecret,
    ...(options.allowList === undefined ? {} : { allowList: options.allowList }),
    // Refused or failed inbound connections show up nowhere else.
    onInboundError: (err, remoteAddress) => log.warn({ remoteAddress, code: err.code, err: err.message }, 'inbound connection refused'),
  })
}

/** The addresses a node publishes: `announce`, else its listen address (an unspecified host stands for each of the machine's addresses). */
export function announcedAddresses(announce: string[] | undefined, address: string | undefined): string[] {
  if (announce !== undefined) return [...announce]
  if (address === undefined) return []
  const at = address.lastIndexOf(':')
  const host = address.slice(0, at).replace(/^\[|\]$/g, '')
  const port = address.slice(at + 1)
  if (host !== '0.0.0.0' && host !== '::') return isRecordAddress(address) ? [address] : []
  const out: string[] = []
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal || (host === '0.0.0.0' && a.family !== 'IPv4') || (a.family === 'IPv6' && a.scopeid !== 0)) continue
      out.push(a.family === 'IPv6' ? `[${a.address}]:${port}` : `${a.address}:${port}`)
    }
  }
  return out.slice(0, MAX_RECORD_ADDRESSES)
}
