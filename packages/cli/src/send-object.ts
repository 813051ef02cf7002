// Streams one object into an HTTP response: `GET /v1/objects/{key}` and the console's download tickets.
// The first piece is read before any header goes out, so a read that fails at once gets its own status;
// one that fails later cuts the connection, so a client never takes a short body for a whole one.
import { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import rangeParser from 'range-parser'
import type { ObjectStat, OpenObject, Server } from '@dcas/server'
import { codeOf, messageOf } from './errors.js'
import { HttpError } from './http-error.js'
import type { NodeMetrics } from './metrics.js'

/** A GET/HEAD's headers for an object. */
export function objectHeaders(reply: FastifyReply, stat: ObjectStat): void {
  reply.header('accept-ranges', 'bytes')
  reply.header('etag', `"${stat.sha256}"`)
  reply.header('last-modified', new Date(stat.updatedAt).toUTCString())
  reply.header('x-dcas-sha256', stat.sha256)
  reply.header('x-dcas-version', String(stat.version))
  reply.header('x-dcas-chunks', String(stat.chunks))
  reply.header('x-dcas-replicas', stat.replicas.join(','))
  reply.type('application/octet-stream')
}

/** `stat`, recovering the key from peers first when this node lost it (a read of nothing resolves it). */
export async function statOrRecover(server: Server, key: string, signal: AbortSignal): Promise<ObjectStat> {
  try {
    return await server.stat(key)
  } catch (err) {
    if (codeOf(err) !== 'ERR_NOT_FOUND') throw err
  }
  for await (const _ of server.read(key, { length: 0, signal })) void _
  return server.stat(key)
}

/** An AbortSignal that fires when the client goes away before the response is complete. */
export function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new Error('the client disconnected'))
  })
  return controller.signal
}

/** `Content-Disposition: attachment` naming the key's last path segment (RFC 6266, UTF-8 through RFC 8187). */
export function attachment(key: string): string {
  const name = key.split('/').filter((s) => s !== '').pop() ?? 'download'
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, '_')
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`
}

/**
 * Streams `key` (whole, or the one byte range of a `Range` header unless `ranges` is false) into `reply`.
 * The key is opened once, so headers and body are of one version whatever writes happen meanwhile;
 * `If-Match` of another version answers 412, and a `Range` whose `If-Range` names another version gets the
 * whole object, so a resumed download never joins two versions.
 */
export async function sendObject(
  server: Server,
  metrics: NodeMetrics,
  request: FastifyRequest,
  reply: FastifyReply,
  key: string,
  options: { ranges?: boolean; attachment?: boolean } = {},
): Promise<FastifyReply> {
  const signal = clientGone(reply)
  const object = await server.open(key, { signal })
  try {
    return await sendVersion(object, metrics, request, reply, signal, options)
  } catch (err) {
    object.close()
    throw err
  }
}

async function sendVersion(object: OpenObject, metrics: NodeMetrics, request: FastifyRequest, reply: FastifyReply, signal: AbortSignal, options: { ranges?: boolean; attachment?: boolean }): Promise<FastifyReply> {
  const { stat } = object
  const { key } = stat
  const etag = `"${stat.sha256}"`
  const ifMatch = request.headers['if-match']
  if (ifMatch !== undefined && ifMatch !== '*' && !ifMatch.split(',').some((t) => t.trim() === etag)) {
    throw new HttpError('ERR_PRECONDITION', `"${key}" is now ${etag}, not ${ifMatch}`)
  }
  let offset = 0
  let length = stat.size
  let partial = false
  const ifRange = request.headers['if-range']
  const range = options.ranges === false || (ifRange !== undefined && ifRange !== etag) ? undefined : request.headers.range
  if (range !== undefined) {
    const parsed = rangeParser(stat.size, range, { combine: true })
    if (parsed === -1) {
      reply.header('content-range', `bytes */${stat.size}`)
      throw new HttpError('ERR_RANGE', `the range "${range}" is outside the object's ${stat.size} bytes`)
    }
    // A malformed header, another unit or several ranges: the whole object, as RFC 9110 allows.
    if (parsed !== -2 && parsed.type === 'bytes' && parsed.length === 1) {
      const [{ start, end }] = parsed as unknown as [{ start: number; end: number }]
      offset = start
      length = end - start + 1
      partial = true
    }
  }
  const source = object.read({ offset, length, signal })
  const pieces = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>
  let first: IteratorResult<Buffer>
  try {
    first = await pieces.next()
  } catch (err) {
    source.destroy()
    throw err
  }
  async function* body(): AsyncGenerator<Buffer> {
    try {
      for (let next = first; !next.done; next = await pieces.next()) {
        metrics.read(next.value.length)
        yield next.value
      }
    } catch (err) {
      // Headers are gone: the connection is cut so the client sees a short body, never a clean end.
      metrics.error('get', codeOf(err) ?? 'ERR_INTERNAL')
      request.log.error({ key, err: messageOf(err) }, 'read failed mid-transfer')
      throw err
    } finally {
      source.destroy()
      object.close()
    }
  }
  objectHeaders(reply, stat)
  if (options.attachment === true) reply.header('content-disposition', attachment(key)).header('cache-control', 'no-store')
  reply.header('content-length', String(length))
  if (partial) reply.header('content-range', `bytes ${offset}-${offset + length - 1}/${stat.size}`)
  return reply.code(partial ? 206 : 200).send(Readable.from(body(), { objectMode: false, highWaterMark: 1 }))
}
