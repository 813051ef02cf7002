// What every adversarial case works with: C under attack, its honest peers A and B, the hostile
// peer H, a way to start more nodes, where findings go, and the check that C is still healthy.
import type { ChildServerOptions, NodeHandle } from '@dcas/server/testing'
import type { HostilePeer } from './hostile.js'
import { digestOf, type Content } from './model.js'
import type { Report } from './report.js'
import type { Rng } from './rng.js'

/** Every node's timeout for one request to a peer, in ms. */
export const REQUEST_TIMEOUT = 2_000

export interface Env {
  dir: string
  /** The nodes' shared log (warn level and above). */
  log: string
  secret: string
  report: Report
  rng: Rng
  a: NodeHandle
  b: NodeHandle
  c: NodeHandle
  rootC: string
  h: HostilePeer
  fail: (what: string, detail: string) => void
  /** Starts another node under `dir/name` (the cluster's secret, chunk size and request timeout unless told); it is closed at the end. */
  spawn: (name: string, options?: Partial<ChildServerOptions>) => Promise<NodeHandle>
  /** From now on, `node` exiting is no crash (it is being closed or killed on purpose). */
  retire: (node: NodeHandle) => void
}

/** C is up, still connected to A and B, and `key` reads back as `content`. */
export async function healthy(env: Env, what: string, key = 'adv/k0', content?: Content): Promise<void> {
  try {
    const peers = await env.c.peers()
    for (const honest of [env.a, env.b]) {
      if (!peers.some((p) => p.nodeId === honest.nodeId && p.connected)) env.fail(what, `C lost its connection to honest peer ${honest.nodeId.slice(0, 12)}`)
    }
    if (content !== undefined) {
      const got = await env.c.read(key)
      if (got.sha256 !== (await digestOf(content))) env.fail(what, `C read ${key} wrong afterwards`)
    } else {
      await env.c.has(key)
    }
  } catch (err) {
    env.fail(what, `C is not healthy afterwards: ${err instanceof Error ? err.message : String(err)}`)
  }
}

/** Reconnects H if C closed its connection (C does after a malformed request), and waits until C counts it again. */
export async function reconnected(env: Env, what: string): Promise<void> {
  if (env.h.connection?.open === true) return
  try {
    await env.h.disconnect()
    await env.h.connect(env.c.address, env.secret)
    await env.c.waitForPeers(3, 15_000)
  } catch (err) {
    env.fail(what, `reconnecting the hostile peer failed: ${err instanceof Error ? err.message : String(err)}`)
    throw err
  }
}

