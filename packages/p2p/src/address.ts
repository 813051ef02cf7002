import { isIP } from 'node:net'
import { InvalidAddressError } from './errors.js'

/** A parsed `host:port`. */
export interface HostPort {
  host: string
  port: number
}

/** Parses `host:port` or `[ipv6]:port`; throws `ERR_INVALID_ADDRESS` otherwise. */
export function parseAddress(address: string, { allowPortZero = false } = {}): HostPort {
  if (typeof address !== 'string') throw new InvalidAddressError('an address must be a string "host:port"')
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(address)
  const host = match?.[1] ?? match?.[2]
  const port = Number(match?.[3])
  if (host === undefined || !Number.isInteger(port) || port > 65535 || (port === 0 && !allowPortZero)) {
    throw new InvalidAddressError(`not a valid "host:port" address: ${JSON.stringify(address).slice(0, 100)}`)
  }
  if (match?.[1] !== undefined && isIP(host) !== 6) throw new InvalidAddressError(`not an IPv6 address: ${host}`)
  return { host, port }
}

/** Formats `host:port`, bracketing IPv6 hosts. */
export function formatAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`
}
