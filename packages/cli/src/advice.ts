// What to say about a peer that does not hold this node's objects: shared by `dcas status`, `dcas put`
// and the web console (no Node.js imports, so the console's bundle takes it as it is).
import type { PeerStatus } from './status.js'

/** What to tell the user about a peer that is not connected, or is connected but behind; `undefined` for a healthy one. */
export function peerAdvice(peer: PeerStatus): string | undefined {
  if (peer.connected) return peer.behind === undefined ? undefined : `connected, but catching up with it failed (${peer.behind.message}); it is tried again with backoff`
  if (peer.error?.code === 'ERR_PEER_UNAUTHORIZED') return "it refused this node: the two do not share a cluster secret. Give both the same one (dcas init --join <the other node's DIR/identity/cluster-secret>)"
  if (peer.error !== undefined) return `cannot reach it (${peer.error.code ?? 'error'}: ${peer.error.message}); it is dialled again with backoff: check it runs (dcas serve) and the address`
  if (peer.address === undefined) return 'not connected; it dials this node, so it reconnects once it runs again (dcas serve on it)'
  return 'not connected; it is dialled again with backoff'
}
