// The web console's side of the HTTP API: its pages (built into dist/console by the package's build),
// logging in (API token or one-time link) to a session, download tickets, and the live status feed.
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { brotliCompressSync, gzipSync, constants as zlib } from 'node:zlib'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Server } from '@dcas/server'
import { HttpError } from './http-error.js'
import type { NodeMetrics, Operation } from './metrics.js'
import { sendObject, statOrRecover, clientGone } from './send-object.js'
import { SESSION_PREFIX, type ConsoleCredentials } from './sessions.js'
import type { StatusFeed } from './status-feed.js'

/** The built console's files, served from memory. */
const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/console/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
  '/console/icon.svg': { file: 'icon.svg', type: 'image/svg+xml' },
}

/** Where the package's build puts the console: `dist/console`, from `src/` and from `dist/` alike. */
export const CONSOLE_DIR = fileURLToPath(new URL('../dist/console/', import.meta.url))

// Nothing but this origin's own files, and no framing: the console runs no code it did not ship.
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
}

/** Live status watchers at once (each holds a connection open). */
const MAX_WATCHERS = 32
/** Largest JSON body the console's POSTs accept. */
const MAX_JSON = 16 * 1024

interface Asset {
  type: string
  etag: string
  identity: Buffer
  gzip: Buffer
  br: Buffer
}

async function loadAssets(dir: string): Promise<Map<string, Asset> | undefined> {
  const assets = new Map<string, Asset>()
  try {
    for (const [path, { file, type }] of Object.entries(ASSETS)) {
      const identity = await readFile(`${dir}${file}`)
      const etag = `"${createHash('sha256').update(identity).digest('base64url').slice(0, 22)}"`
      assets.set(path, { type, etag, identity, gzip: gzipSync(identity, { level: 9 }), br: brotliCompressSync(identity, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11 } }) })
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  return assets
}

/** Reads a small JSON object body; anything else is `ERR_BAD_REQUEST`. */
async function readJson(request: FastifyRequest): Promise<Record<string, unknown>> {
  const body = request.body as AsyncIterable<Buffer> | undefined
  let text = ''
  if (body !== undefined) {
    let size = 0
    const pieces: Buffer[] = []
    for await (const piece of body) {
      size += piece.length
      if (size > MAX_JSON) throw new HttpError('ERR_BAD_REQUEST', `the request body is over ${MAX_JSON} bytes`)
      pieces.push(piece)
    }
    text = Buffer.concat(pieces).toString('utf8')
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new HttpError('ERR_BAD_REQUEST', 'the request body must be a JSON object')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError('ERR_BAD_REQUEST', 'the request body must be a JSON object')
  return value as Record<string, unknown>
}

const bearerOf = (request: FastifyRequest): string | undefined => /^Bearer (\S+)$/i.exec(request.headers.authorization ?? '')?.[1]

/** What the console's routes need from the API. */
export interface ConsoleContext {
  server: Server
  metrics: NodeMetrics
  credentials: ConsoleCredentials
  feed: StatusFeed
  /** Whether `token` is the API token (compared in constant time). */
  checkToken: (token: string) => boolean
  /** Counts an operation of a request (as the API's other routes do). */
  op: (request: FastifyRequest, name: Operation) => void
  /** Where the built pages are (default {@link CONSOLE_DIR}). */
  dir?: string
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route needs no bearer token (the console's pages, logging in, a download ticket). */
    public?: boolean
  }
}

/**
 * Adds the console's routes. Public: `GET /`, `/console/*` (the pages), `POST /v1/session` (log in with
 * `{ token }` or `{ link }`) and `GET /v1/downloads/{ticket}` (the ticket is the credential). The rest need
 * a bearer token: the API token or a session's.
 */
export function registerConsole(app: FastifyInstance, ctx: ConsoleContext): void {
  const { server, credentials, feed } = ctx
  let assets: Promise<Map<string, Asset> | undefined> | undefined
  const streams = new Set<() => void>()

  for (const path of Object.keys(ASSETS)) {
    app.get(path, { config: { public: true } }, async (request, reply) => {
      const all = await (assets ??= loadAssets(ctx.dir ?? CONSOLE_DIR))
      const asset = all?.get(path)
      if (asset === undefined) {
        return reply.code(503).type('text/plain; charset=utf-8').send('The web console is not built into this copy of @dcas/cli (run its build: pnpm build).\n')
      }
      reply.headers(PAGE_HEADERS).header('etag', asset.etag).header('vary', 'accept-encoding').type(asset.type)
      if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send()
      const accepts = request.headers['accept-encoding'] ?? ''
      if (/\bbr\b/.test(accepts)) return reply.header('content-encoding', 'br').send(asset.br)
      if (/\bgzip\b/.test(accepts)) return reply.header('content-encoding', 'gzip').send(asset.gzip)
      return reply.send(asset.identity)
    })
  }

  // Logging in: the API token (typed into the console) or a one-time link's code (`dcas open`) buys a session.
  app.post('/v1/session', { config: { public: true } }, async (request, reply) => {
    const body = await readJson(request)
    let ok = false
    if (typeof body.link === 'string') ok = credentials.redeemLink(body.link)
    else if (typeof body.token === 'string') ok = ctx.checkToken(body.token)
    else throw new HttpError('ERR_BAD_REQUEST', 'give { "token": "…" } or { "link": "…" }')
    if (!ok) {
      throw new HttpError(
        'ERR_UNAUTHORIZED',
        typeof body.link === 'string' ? 'this login link was used already or has expired: run dcas open again' : "that is not this node's API token (it is in DIR/api.json, and changes each time the node starts)",
      )
    }
    return reply.code(201).header('cache-control', 'no-store').send({ session: credentials.startSession(), nodeId: server.nodeId })
  })

  app.get('/v1/session', async (request, reply) => {
    const bearer = bearerOf(request) ?? ''
    return reply.header('cache-control', 'no-store').send({ nodeId: server.nodeId, kind: bearer.startsWith(SESSION_PREFIX) ? 'session' : 'token' })
  })

  app.delete('/v1/session', async (request, reply) => {
    credentials.endSession(bearerOf(request) ?? '')
    return reply.code(204).send()
  })

  // A one-time login link, for `dcas open`: only the API token makes one.
  app.post('/v1/session/links', async (request, reply) => {
    if ((bearerOf(request) ?? '').startsWith(SESSION_PREFIX)) throw new HttpError('ERR_UNAUTHORIZED', 'a login link needs the API token, not a session')
    const { code, expiresAt } = credentials.createLink()
    const host = request.headers.host ?? `127.0.0.1:${(app.server.address() as { port: number }).port}`
    // In the fragment: never sent to the server, never in a log or a Referer; the page spends it and drops it.
    return reply.code(201).header('cache-control', 'no-store').send({ url: `http://${host}/#login=${code}`, expiresAt })
  })

  // Downloads: a browser saves a file from a plain GET, which carries no bearer token, so an authenticated
  // POST buys a ticket for one GET of one key within a minute.
  app.post('/v1/downloads', async (request, reply) => {
    const body = await readJson(request)
    if (typeof body.key !== 'string') throw new HttpError('ERR_BAD_REQUEST', 'give { "key": "…" }')
    const stat = await statOrRecover(server, body.key, clientGone(reply))
    const { ticket, expiresAt } = credentials.createTicket(body.key)
    return reply.code(201).header('cache-control', 'no-store').send({ url: `/v1/downloads/${ticket}`, key: stat.key, size: stat.size, sha256: stat.sha256, expiresAt })
  })

  app.get('/v1/downloads/:ticket', { config: { public: true } }, async (request, reply) => {
    ctx.op(request, 'get')
    const key = credentials.redeemTicket((request.params as { ticket: string }).ticket)
    if (key === undefined) throw new HttpError('ERR_NOT_FOUND', 'this download link was used already or has expired: start the download again from the console')
    return sendObject(server, ctx.metrics, request, reply, key, { ranges: false, attachment: true })
  })

  // The live status, as server-sent events (`event: status`): the console reads it with fetch and its session.
  app.get('/v1/events', async (request, reply) => {
    ctx.op(request, 'status')
    if (feed.watchers >= MAX_WATCHERS) throw new HttpError('ERR_BUSY', `${MAX_WATCHERS} live views are open already: close one`)
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' })
    res.write(': dcas status\n\n')
    // A slow reader gets the newest status once it drains, never a growing backlog.
    let pending: string | undefined
    let draining = false
    const write = (text: string): void => {
      if (draining) {
        pending = text
        return
      }
      if (res.write(text)) return
      draining = true
      res.once('drain', () => {
        draining = false
        const next = pending
        pending = undefined
        if (next !== undefined) write(next)
      })
    }
    const unsubscribe = feed.subscribe((status) => write(`event: status\ndata: ${JSON.stringify(status)}\n\n`))
    const heartbeat = setInterval(() => write(': still here\n\n'), 15_000).unref()
    const end = (): void => {
      clearInterval(heartbeat)
      unsubscribe()
      streams.delete(end)
      if (!res.writableEnded) res.end()
    }
    streams.add(end)
    res.once('close', end)
    return reply
  })

  // Open event streams would hold the server's close; they end first.
  app.addHook('preClose', (done) => {
    for (const end of [...streams]) end()
    done()
  })
  app.addHook('onClose', (_app, done) => {
    feed.close()
    credentials.clear()
    done()
  })
}
