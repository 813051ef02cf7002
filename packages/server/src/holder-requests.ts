// The holder's side of the replication protocol: each request is dispatched to its answer. <owner> is
// always the authenticated node id of the connection the request came on: a peer can only ever touch its
// own replicas. Holders verify every blob against its cipherId and count references per owner.
import { PeerError } from './errors.js'
import { blobGet, blobHas, blobProve, blobPut, blobRelease } from './holder-blobs.js'
import { refDelete, refDrop, refGet, refList, refPut, refStore } from './holder-refs.js'
import { freeUnreferenced, type Handler, type HolderContext } from './holder-state.js'
import { PROTOCOL_VERSION, type Exchange, type Header } from './wire.js'

/**
 * Serves the requests one owner sends on one stream. `received` collects blobs put through this connection;
 * `onMalformed` is told when the peer broke the protocol (the caller closes its connection).
 */
export async function serveRequest(ctx: HolderContext, owner: string, ex: Exchange, received: Set<string>, onMalformed?: (err: Error) => void): Promise<void> {
  let header: Header | undefined
  try {
    header = await ex.readHeader()
    if (header === undefined) {
      // An empty request: finish our side too, so the stream frees its slot.
      await ex.end()
      return
    }
    if (header.v !== PROTOCOL_VERSION) {
      await ex.send({ ok: false, code: 'ERR_VERSION', message: `replication protocol ${String(header.v)} is not spoken here (${PROTOCOL_VERSION} is)` })
      await ex.end()
      return
    }
    // Own names only: an operation called `constructor` or `__proto__` is unknown, not Object.prototype's.
    const op = String(header.op)
    const handler = Object.hasOwn(HANDLERS, op) ? HANDLERS[op] : undefined
    const route = handler === undefined && ctx.routes !== undefined && Object.hasOwn(ctx.routes, op) ? ctx.routes[op] : undefined
    if (handler === undefined && route === undefined) throw new PeerError(`unknown operation ${JSON.stringify(header.op)?.slice(0, 40)}`)
    if (handler !== undefined) await handler({ ctx, owner, received }, header, ex)
    else await route!(owner, header, ex)
    await ex.end()
  } catch (err) {
    const code = (err as { code?: string }).code
    ctx.log.warn({ err, owner, op: header?.op }, 'replication request failed')
    try {
      if (code === 'ERR_PEER') await ex.send({ ok: false, code: 'ERR_PROTOCOL', message: (err as Error).message })
    } catch {
      // the stream is already gone
    }
    ex.reset(err instanceof Error ? err : undefined)
    if (code === 'ERR_PEER' && err instanceof Error) onMalformed?.(err)
  }
}

const HANDLERS: Partial<Record<string, Handler>> = {
  'blob.put': blobPut,
  'blob.get': blobGet,
  'blob.has': blobHas,
  'blob.release': blobRelease,
  'blob.prove': blobProve,
  'ref.put': refPut,
  'ref.store': refStore,
  'ref.get': refGet,
  'ref.delete': refDelete,
  'ref.drop': refDrop,
  'ref.list': refList,
}

/** Frees the blobs an owner put through a connection that closed without any ref taking them up. */
export async function sweepReceived(ctx: HolderContext, owner: string, received: Set<string>): Promise<void> {
  if (received.size === 0) return
  await freeUnreferenced(ctx, owner, received)
}
