// The node's HTTP API (fastify): objects streamed in and out, listing, status, scrub and
// Prometheus metrics, all behind one bearer token. Bodies are never buffered: a PUT's
// request stream goes straight into `server.store`, and `server.read` straight into a GET's response.
import { createHash, timingSafeEqual } from 'node:crypto'
import { Readable } from 'node:stream'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import rangeParser from 'range-parser'
import type { ObjectStat, OpenObject, ScrubResult, Server } from '@dcas/server'
import { codeOf, messageOf } from './errors.js'
import { createMetrics, type NodeMetrics, type Operation } from './metrics.js'
import type { NodeStatus, PeerStatus } from './status.js'

/** Options of {@link createApi}. */
export interface ApiOptions {
  /** The started server the API serves. */
  server: Server
  /** The bearer token every request must carry (`Authorization: Bearer <token>`). */
  token: string
  /** Metrics to feed and serve (default: new ones for `server`). */
  metrics?: NodeMetrics
  /** What `GET /v1/status` answers. */
  status: () => Promise<NodeStatus>
  /** What `GET /v1/peers` answers (default: the server's known peers). */
  peers?: () => PeerStatus[]
  /** Called with each finished scrub. */
  onScrub?: (result: ScrubResult) => void
  /** A pino logger: one line per request (default: silent). */
  logger?: FastifyBaseLogger
}

/** The JSON body of every error answer. */
export interface ApiErrorBody {
  error: { code: string; message: string; details?: unknown }
}

/** A page of `GET /v1/objects`. */
export interface ListPage {
  objects: Array<{ key: string; size: number; sha256: string; version: number; updatedAt: number }>
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string
}

const STATUS_OF: Record<string, number> = {
  ERR_UNAUTHORIZED: 401,
  ERR_INVALID_KEY: 400,
  ERR_INVALID_OPTIONS: 400,
  ERR_BAD_REQUEST: 400,
  ERR_NOT_FOUND: 404,
  ERR_RANGE: 416,
  ERR_PRECONDITION: 412,
  ERR_QUORUM: 503,
  ERR_UNAVAILABLE: 503,
  ERR_CLOSED: 503,
  ERR_ABORTED: 499,
}

class HttpError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

/** The object key of a `/v1/objects/{key}` request (the router has decoded it). */
const keyOf = (request: FastifyRequest): string => (request.params as { '*': string })['*']

/** A GET/HEAD's headers for an object. */
function objectHeaders(reply: FastifyReply, stat: ObjectStat): void {
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
async function statOrRecover(server: Server, key: string, signal: AbortSignal): Promise<ObjectStat> {
  try {
    return await server.stat(key)
  } catch (err) {
    if (codeOf(err) !== 'ERR_NOT_FOUND') throw err
  }
  for await (const _ of server.read(key, { length: 0, signal })) void _
  return server.stat(key)
}

/** An AbortSignal that fires when the client goes away before the response is complete. */
function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new Error('the client disconnected'))
  })
  return controller.signal
}

/**
 * Creates the HTTP API of a node (not yet listening: `startDaemon` listens on 127.0.0.1).
 *
 * Routes: `PUT|GET|HEAD|DELETE /v1/objects/{key}`, `GET /v1/objects?prefix=&limit=&after=`,
 * `GET /v1/status`, `GET /v1/peers`, `POST /v1/scrub`, `GET /metrics`. Every one needs the bearer token.
 */
export function createApi(options: ApiOptions): FastifyInstance {
  const { server, status } = options
  const metrics = options.metrics ?? createMetrics(server)
  const expected = digest(options.token)
  const app = Fastify({
    ...(options.logger === undefined ? {} : { loggerInstance: options.logger }),
    logController: new LogController({ disableRequestLogging: true }), // one line per request, from onResponse
    exposeHeadRoutes: false,
    requestTimeout: 0, // a 1 GiB upload may take minutes
    routerOptions: { maxParamLength: 8192 },
  })
  const opOf = new WeakMap<FastifyRequest, Operation>()
  const op = (request: FastifyRequest, name: Operation): void => {
    opOf.set(request, name)
    metrics.operation(name)
  }

  // The body of a PUT is the request stream itself, whatever its content type.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload))

  app.addHook('onRequest', async (request, reply) => {
    const header = request.headers.authorization ?? ''
    const given = /^Bearer (\S+)$/i.exec(header)?.[1]
    if (given !== undefined && timingSafeEqual(digest(given), expected)) return
    // Close the connection rather than read a body nobody will use.
    reply.header('connection', 'close').header('www-authenticate', 'Bearer realm="dcas"')
    await reply.code(401).send({ error: { code: 'ERR_UNAUTHORIZED', message: given === undefined ? 'a bearer token is required (see DIR/api.json)' : 'the bearer token is not this node\'s (see DIR/api.json)' } } satisfies ApiErrorBody)
    return reply
  })

  app.addHook('onResponse', async (request, reply) => {
    const quiet = request.url === '/metrics' || request.url === '/v1/status' || request.url === '/v1/peers'
    const line = { method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }
    if (quiet) request.log.debug(line, 'request')
    else request.log.info(line, 'request')
    await Promise.resolve()
  })

  app.setErrorHandler(async (error, request, reply) => {
    const code = codeOf(error) ?? 'ERR_INTERNAL'
    const validation = (error as { validation?: unknown }).validation !== undefined
    const fastifyStatus = (error as { statusCode?: number }).statusCode
    const httpStatus = validation ? 400 : (STATUS_OF[code] ?? (fastifyStatus !== undefined && fastifyStatus >= 400 && fastifyStatus < 500 ? fastifyStatus : 500))
    const operation = opOf.get(request)
    const interrupted = request.method === 'PUT' && !request.raw.complete && request.raw.readableAborted
    const reported = interrupted ? 'ERR_ABORTED' : validation ? 'ERR_BAD_REQUEST' : code
    if (operation !== undefined) metrics.error(operation, reported)
    if (interrupted) request.log.warn({ key: keyOf(request), err: messageOf(error) }, 'upload interrupted: the client disconnected; nothing was stored')
    else if (httpStatus >= 500 && code !== 'ERR_QUORUM') request.log.error({ url: request.url, code, err: messageOf(error) }, 'request failed')
    const details = (error as { details?: unknown }).details
    // A body left unread (a refused PUT) is not worth reading: close the connection after the answer.
    if (!request.raw.complete) reply.header('connection', 'close')
    await reply.code(httpStatus).send({ error: { code: reported, message: messageOf(error), ...(details === undefined ? {} : { details }) } } satisfies ApiErrorBody)
    return reply
  })

  app.setNotFoundHandler(async (request, reply) => {
    await reply.code(404).send({ error: { code: 'ERR_NO_ROUTE', message: `no route ${request.method} ${request.url}` } } satisfies ApiErrorBody)
    return reply
  })

  app.put('/v1/objects/*', async (request, reply) => {
    op(request, 'put')
    const key = keyOf(request)
    // A body-less PUT (Content-Length: 0) stores the empty object.
    const body = (request.body as Readable | undefined) ?? Readable.from([])
    const result = await server.store(key, body)
    metrics.stored(result.size)
    return reply.code(201).send(result)
  })

  app.head('/v1/objects/*', async (request, reply) => {
    op(request, 'head')
    const stat = await statOrRecover(server, keyOf(request), clientGone(reply))
    objectHeaders(reply, stat)
    reply.header('content-length', String(stat.size))
    return reply.code(200).send()
  })

  app.get('/v1/objects/*', async (request, reply) => {
    op(request, 'get')
    const key = keyOf(request)
    const signal = clientGone(reply)
    // Resolved once: the headers and the body are of the same version, whatever happens to the key meanwhile.
    const object = await server.open(key, { signal })
    try {
      return await sendObject(request, reply, object, signal)
    } catch (err) {
      object.close()
      throw err
    }
  })

  /** A GET's answer for one opened version: 200, 206 with a single range, or 412 when `If-Match` names another version. */
  async function sendObject(request: FastifyRequest, reply: FastifyReply, object: OpenObject, signal: AbortSignal): Promise<FastifyReply> {
    const { stat } = object
    const key = stat.key
    const etag = `"${stat.sha256}"`
    const ifMatch = request.headers['if-match']
    if (ifMatch !== undefined && ifMatch !== '*' && !ifMatch.split(',').some((t) => t.trim() === etag)) {
      throw new HttpError('ERR_PRECONDITION', `"${key}" is now ${etag}, not ${ifMatch}`)
    }
    let offset = 0
    let length = stat.size
    let partial = false
    const range = request.headers.range
    // A range resumes a download only of the version it started on: another version is sent whole.
    const ifRange = request.headers['if-range']
    if (range !== undefined && (ifRange === undefined || ifRange === etag)) {
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
    // The first piece is read before any header goes out, so a read that fails at once gets its own status.
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
    reply.header('content-length', String(length))
    if (partial) reply.header('content-range', `bytes ${offset}-${offset + length - 1}/${stat.size}`)
    return reply.code(partial ? 206 : 200).send(Readable.from(body(), { objectMode: false, highWaterMark: 1 }))
  }

  app.delete('/v1/objects/*', async (request, reply) => {
    op(request, 'delete')
    return reply.send(await server.delete(keyOf(request)))
  })

  app.get(
    '/v1/objects',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: { prefix: { type: 'string' }, after: { type: 'string' }, limit: { type: 'integer', minimum: 1, maximum: 10_000, default: 1000 } },
        },
      },
    },
    async (request, reply) => {
      op(request, 'list')
      const { prefix, after, limit } = request.query as { prefix?: string; after?: string; limit: number }
      const entries = await server.list({ limit: limit + 1, ...(prefix === undefined ? {} : { prefix }), ...(after === undefined ? {} : { after }) })
      const objects = entries.slice(0, limit)
      const page: ListPage = { objects, ...(entries.length > limit ? { next: objects.at(-1)!.key } : {}) }
      return reply.send(page)
    },
  )

  app.get('/v1/status', async (request, reply) => {
    op(request, 'status')
    return reply.send(await status())
  })

  app.get('/v1/peers', async (request, reply) => {
    op(request, 'status')
    return reply.send(options.peers?.() ?? server.peers())
  })

  app.post('/v1/scrub', async (request, reply) => {
    op(request, 'scrub')
    const result = await server.scrub({ signal: clientGone(reply) })
    metrics.scrubbed(result)
    options.onScrub?.(result)
    return reply.send(result)
  })

  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.registry.metrics()
    return reply.type(metrics.registry.contentType).send(text)
  })

  return app
}
