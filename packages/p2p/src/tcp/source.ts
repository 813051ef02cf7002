// Which source an inbound connection counts against for the per-source handshake cap:
// an IPv4 address, or the /64 prefix of an IPv6 address (one host usually holds a whole /64).
import { isIPv6 } from 'node:net'

/** Expands an IPv6 address into its eight 16-bit groups (no embedded IPv4 expected). */
function groupsOf(address: string): string[] | undefined {
  const [head, tail, ...rest] = address.split('::')
  if (rest.length > 0) return undefined
  const left = head === '' || head === undefined ? [] : head.split(':')
  const right = tail === undefined ? [] : tail === '' ? [] : tail.split(':')
  const missing = 8 - left.length - right.length
  if (tail === undefined ? missing !== 0 : missing < 0) return undefined
  return [...left, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...right]
}

/** The source key of a remote address: `a.b.c.d`, or `xxxx:xxxx:xxxx:xxxx::/64`. */
export function sourceOf(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined) return 'unknown'
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remoteAddress)
  if (mapped !== null) return mapped[1]!
  if (!isIPv6(remoteAddress)) return remoteAddress
  const groups = groupsOf(remoteAddress.split('%')[0]!)
  if (groups === undefined) return remoteAddress
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`
}
