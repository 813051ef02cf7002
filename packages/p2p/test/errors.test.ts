import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { P2PError, P2P_ERROR_CODES, PeerUnauthorizedError, ProtocolError } from '../src/index.js'

describe('errors', () => {
  it('carry a stable code and name, and keep their cause', () => {
    const cause = new Error('handshake failed')
    const err = new PeerUnauthorizedError('cluster secret mismatch', { cause })
    expect(err).toBeInstanceOf(P2PError)
    expect(err.code).toBe('ERR_PEER_UNAUTHORIZED')
    expect(err.name).toBe('PeerUnauthorizedError')
    expect(err.cause).toBe(cause)
    expect(new ProtocolError('bad frame').code).toBe('ERR_PROTOCOL')
  })

  it('are each documented in the README', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    for (const code of P2P_ERROR_CODES) expect(readme, code).toContain(`| \`${code}\` |`)
  })
})
