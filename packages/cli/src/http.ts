// The node's HTTP API (fastify): objects streamed in and out, listing, status, scrub and
// Prometheus metrics, all behind a bearer token (the API token, or a web console session's), and the
// web console itself. Bodies are never buffered: a PUT's request stream goes straight into
// `server.store`, and `server.read` straight into a GET's response.
import { createHash, timingSafeEqual } from 'node:crypto'
import { Readable } from 'node:stream'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify'
import type { DrainResult, ListEntry, ScrubResult, Server } from '@dcas/server'
import { registerConsole } from './console.js'
import { codeOf, messageOf } from './errors.js'
import { HttpError, STATUS_OF } from './http-error.js'
import { listFolder, searchKeys } from './listing.js'
import { laggingObjects } from './health.js'
import { createMetrics, type NodeMetrics, type Operation } from './metrics.js'
import { clientGone, objectHeaders, sendObject, statOrRecover } from './send-object.js'
import { ConsoleCredentials } from './sessions.js'
import { createStatusFeed } from './status-feed.js'
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
  /** Called once a drain finished and its answer went out (the daemon then stops). */
  onDrained?: () => void
  /** A pino logger: one line per request (default: silent). */
  logger?: FastifyBaseLogger
  /** The web console's sessions, login links and download tickets (default: new ones). */
  credentials?: ConsoleCredentials
}

/** The JSON body of every error answer. */
export interface ApiErrorBody {
  error: { code: string; message: string; details?: unknown }
}

/** A page of `GET /v1/objects`. */
export interface ListPage {
  objects: Array<{ key: string; size: number; sha256: string; version: number; updatedAt: number }>
  /** With `delimiter`: the sub-folders on this page (key prefixes ending with the delimiter). */
  prefixes?: string[]
  /** With `contains`: keys looked at for this page. */
  scanned?: number
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

/** The object key of a `/v1/objects/{key}` request (the router has decoded it). */
const keyOf = (request: FastifyRequest): string => (request.params as { '*': string })['*']

/**
 * Creates the HTTP API of a node (not yet listening: `startDaemon` listens on 127.0.0.1).
 *
 * Routes: `PUT|GET|HEAD|DELETE /v1/objects/{key}`, `GET /v1/objects?prefix=&limit=&after=&delimiter=&contains=`,
 * `GET /v1/status`, `GET /v1/lagging`, `GET /v1/peers`, `POST /v1/scrub`, `POST /v1/drain`, `GET /metrics`, and the web console's (`GET /`,
 * `/v1/session`, `/v1/downloads`, `/v1/events`). All but the console's pages, its login and a download
 * ticket need a bearer token: the API token, or a console session's.
 */
export function createApi(options: ApiOptions): FastifyInstance {
  const { server, status } = options
  const metrics = options.metrics ?? createMetrics(server)
  const expected = digest(options.token)
  const isToken = (given: string): boolean => timingSafeEqual(digest(given), expected)
  const credentials = options.credentials ?? new ConsoleCredentials()
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
    if (request.routeOptions.config.public === true) return
    const header = request.headers.authorization ?? ''
    const given = /^Bearer (\S+)$/i.exec(header)?.[1]
    if (given !== undefined && (isToken(given) || credentials.useSession(given))) return
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
    return sendObject(server, metrics, request, reply, keyOf(request))
  })

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
          properties: {
            prefix: { type: 'string' },
            after: { type: 'string' },
            limit: { type: 'integer', minimum: 1, maximum: 10_000, default: 1000 },
            delimiter: { type: 'string', minLength: 1, maxLength: 16 },
            contains: { type: 'string', minLength: 1, maxLength: 1024 },
          },
        },
      },
    },
    async (request, reply) => {
      op(request, 'list')
      const { prefix = '', after, limit, delimiter, contains } = request.query as { prefix?: string; after?: string; limit: number; delimiter?: string; contains?: string }
      const from = after === undefined ? {} : { after }
      if (delimiter !== undefined && contains !== undefined) throw new HttpError('ERR_BAD_REQUEST', 'give delimiter or contains, not both')
      if (delimiter !== undefined) return reply.send((await listFolder(server, { prefix, delimiter, limit, ...from })) satisfies ListPage)
      if (contains !== undefined) return reply.send((await searchKeys(server, { prefix, text: contains, limit, ...from })) satisfies ListPage)
      const entries: ListEntry[] = await server.list({ limit: limit + 1, prefix, ...from })
      const objects = entries.slice(0, limit)
      const page: ListPage = { objects, ...(entries.length > limit ? { next: objects.at(-1)!.key } : {}) }
      return reply.send(page)
    },
  )

  app.get('/v1/status', async (request, reply) => {
    op(request, 'status')
    return reply.send(await status())
  })

  app.get(
    '/v1/lagging',
    { schema: { querystring: { type: 'object', properties: { after: { type: 'string' }, limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } } } } },
    async (request, reply) => {
      op(request, 'status')
      const { after, limit } = request.query as { after?: string; limit: number }
      return reply.send(await laggingObjects(server, { limit, ...(after === undefined ? {} : { after }) }))
    },
  )

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

  // The answer is one JSON line per change of the count of replicas still held for others, then the result.
  app.post('/v1/drain', async (request, reply) => {
    op(request, 'drain')
    const signal = clientGone(reply)
    async function* lines(): AsyncGenerator<string> {
      const pending: string[] = []
      let wake: (() => void) | undefined
      let outcome: { result: DrainResult } | { error: unknown } | undefined
      void server
        .drain({ signal, onProgress: (remaining) => (pending.push(`${JSON.stringify({ remaining })}\n`), wake?.()) })
        .then(
          (result) => (outcome = { result }),
          (error: unknown) => (outcome = { error }),
        )
        .finally(() => wake?.())
      for (;;) {
        while (pending.length > 0) yield pending.shift()!
        if (outcome !== undefined) break
        await new Promise<void>((resolve) => (wake = resolve))
      }
      if ('result' in outcome) {
        yield `${JSON.stringify({ drained: true, ...outcome.result })}\n`
        // The node has nothing left to do once the client has the answer.
        reply.raw.once('finish', () => options.onDrained?.())
      } else {
        const code = codeOf(outcome.error) ?? 'ERR_INTERNAL'
        metrics.error('drain', code)
        yield `${JSON.stringify({ error: { code, message: messageOf(outcome.error) } } satisfies ApiErrorBody)}\n`
      }
    }
    return reply.type('application/x-ndjson').send(Readable.from(lines(), { objectMode: false }))
  })

  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.registry.metrics()
    return reply.type(metrics.registry.contentType).send(text)
  })

  const feed = createStatusFeed({ server, status, onError: (err) => app.log.warn({ err: messageOf(err) }, 'computing the live status failed') })
  registerConsole(app, { server, metrics, credentials, feed, checkToken: isToken, op })

  return app
}
