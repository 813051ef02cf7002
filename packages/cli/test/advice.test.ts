import { describe, expect, it } from 'vitest'
import { peerAdvice } from '../src/advice.js'

describe('what dcas says about a peer that is not connected', () => {
  it('says nothing about a connected peer', () => {
    expect(peerAdvice({ nodeId: 'ab', address: '10.0.0.2:7420', connected: true })).toBeUndefined()
  })

  it('says why a connected peer is behind, and that it is tried again', () => {
    const advice = peerAdvice({ nodeId: 'ab', connected: true, behind: { message: 'stream reset: disk full', retryIn: 4000, at: Date.now() } })
    expect(advice).toContain('stream reset: disk full')
    expect(advice).toContain('tried again with backoff')
  })

  it('tells a peer this node dials apart from one that dials this node, which it cannot redial', () => {
    expect(peerAdvice({ address: '10.0.0.2:7420', connected: false })).toContain('dialled again with backoff')
    const inbound = peerAdvice({ nodeId: 'ab', connected: false })
    expect(inbound).not.toContain('dialled again')
    expect(inbound).toContain('it dials this node')
    expect(inbound).toContain('dcas serve')
  })

  it('names the cluster secret when the peer refused this node, and the dial error otherwise', () => {
    const at = Date.now()
    expect(peerAdvice({ address: 'h:1', connected: false, error: { code: 'ERR_PEER_UNAUTHORIZED', message: 'refused', at } })).toContain('dcas init --join')
    expect(peerAdvice({ address: 'h:1', connected: false, error: { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED', at } })).toContain('ECONNREFUSED: connect ECONNREFUSED')
  })
})
