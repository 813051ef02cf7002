// The gateway: a request listener for node:http (or any server that hands over Node's request and
// response), the handlers for `checkContinue` and `clientError`, an optional listening server of
// its own, and the periodic cleaning of incomplete multipart uploads.
import { createHash, randomBytes } from 'node:crypto'
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from '@dcas/server'
import { S3Context } from './context.js'
import { InvalidOptionsError, S3Error, S3_ERRORS, messageOf } from './errors.js'
import { toS3Error, type Deps } from './ops/common.js'
import { cleanUploads, type CleanupResult } from './ops/multipart.js'
import { route } from './router.js'
import { verifySignature, type S3Credentials } from './sigv4.js'
import type { GatewayServer } from './store-api.js'
import { el, xmlDocument } from './xml.js'

/** Options of {@link createS3Gateway}. */
export interface S3GatewayOptions {
  /** The dcas server (started) whose keys hold the buckets and objects. */
  server: GatewayServer
  /** The access keys that may sign requests (every one has full access). */
  credentials: S3Credentials | readonly S3Credentials[]
  /** The region clients sign for (default `us-east-1`, what most clients assume). */
  region?: string
  /** Domains under which the first label of the Host is the bucket (virtual-host style), e.g. `s3.example.com`; path style always works. */
  virtualHosts?: readonly string[]
  /** Largest difference between a request's signing time and this machine's clock, in ms (default 15 minutes, as S3). */
  maxClockSkew?: number
  /** Incomplete multipart uploads older than this (ms) are removed with their parts (default 24 hours). */
  uploadMaxAge?: number
  /** How often incomplete uploads are looked for, in ms (default: an hour, or `uploadMaxAge` when shorter); 0 never. */
  cleanupInterval?: number
  /** Smallest part of a multipart upload but the last (default 5 MiB, as S3). */
  minPartSize?: number
  /** Largest object in one PUT and largest part (default 5 GiB, as S3). */
  maxPutSize?: number
  /** Most incomplete multipart uploads per bucket (default 10 000). */
  maxUploads?: number
  /** Longest request head (request line and headers) in bytes, for {@link S3Gateway.listen} (default 16 KiB). */
  maxHeaderSize?: number
  /** A pino-compatible logger (default silent). */
  logger?: Logger
}

/** A running gateway. */
export interface S3Gateway {
  /** The `request` listener for a node:http server. */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void
  /** The `checkContinue` listener: `100 Continue` is sent only once the request is signed and acceptable. */
  readonly checkContinue: (req: IncomingMessage, res: ServerResponse) => void
  /** The `clientError` listener: a request Node refuses (oversized headers) gets S3's XML error. */
  readonly clientError: (err: Error, socket: Duplex) => void
  /** Listens on `host:port` (port 0 picks one) with a node:http server of its own; resolves to its URL. */
  listen(address: string): Promise<string>
  /** The URL {@link S3Gateway.listen} bound, `http://host:port`. */
  readonly url: string | undefined
  /** Removes incomplete uploads initiated before `olderThan` (default: now − `uploadMaxAge`), and parts whose upload is gone. */
  cleanup(options?: { olderThan?: number }): Promise<CleanupResult>
  /** Stops listening and cleaning, and waits for requests and background work in flight. Does not close the dcas server. */
  close(): Promise<void>
}

/** Drops every line: the default logger (the gateway needs nothing of @dcas/server at run time). */
const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }

const DEFAULTS = {
  region: 'us-east-1',
  maxClockSkew: 15 * 60_000,
  uploadMaxAge: 24 * 3600_000,
  minPartSize: 5 * 1024 * 1024,
  maxPutSize: 5 * 1024 * 1024 * 1024,
  maxUploads: 10_000,
  maxHeaderSize: 16 * 1024,
}

/** New S3 credentials: a 20-character access key id (`DC…`) and a 40-character secret, as AWS shapes them. */
export function generateCredentials(): S3Credentials {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  const id = [...randomBytes(18)].map((b) => alphabet[b % 32]).join('')
  return { accessKeyId: `DC${id}`, secretAccessKey: randomBytes(30).toString('base64').replaceAll('+', 'A').replaceAll('/', 'B') }
}

const positive = (value: number | undefined, name: string, fallback: number, allowZero = false): number => {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < (allowZero ? 0 : 1)) throw new InvalidOptionsError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${String(value)}`)
  return value
}

/** `host:port` or `[v6]:port`. */
function parseListenAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(address)
  const port = Number(m?.[3])
  if (m === null || port > 65535) throw new InvalidOptionsError(`the S3 address must be HOST:PORT, got "${address}"`)
  return { host: m[1] ?? m[2]!, port }
}

/** The status line's reason for S3's statuses. */
const REASONS: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout' }

/**
 * Creates an S3 gateway over a dcas server. Mount {@link S3Gateway.handler} in a node:http server
 * (with `checkContinue` and `clientError`), or call {@link S3Gateway.listen}.
 */
export function createS3Gateway(options: S3GatewayOptions): S3Gateway {
  const { server } = options
  if (typeof server?.store !== 'function' || typeof server.compose !== 'function' || typeof server.open !== 'function') throw new InvalidOptionsError('server must be a dcas Server (with store, compose, open, stat, has, list, delete)')
  const credentials = Array.isArray(options.credentials) ? (options.credentials as readonly S3Credentials[]) : [options.credentials as S3Credentials]
  if (credentials.length === 0) throw new InvalidOptionsError('credentials: give at least one access key')
  const secrets = new Map<string, string>()
  for (const c of credentials) {
    if (typeof c?.accessKeyId !== 'string' || !/^[A-Za-z0-9_-]{3,128}$/.test(c.accessKeyId)) throw new InvalidOptionsError('credentials: an accessKeyId must be 3 to 128 letters, digits, _ or -')
    if (typeof c.secretAccessKey !== 'string' || c.secretAccessKey.length < 16) throw new InvalidOptionsError(`credentials: the secret of ${c.accessKeyId} must have at least 16 characters`)
    secrets.set(c.accessKeyId, c.secretAccessKey)
  }
  const region = options.region ?? DEFAULTS.region
  if (!/^[a-z0-9-]{1,64}$/.test(region)) throw new InvalidOptionsError(`region must be lowercase letters, digits and hyphens, got "${region}"`)
  const virtualHosts = (options.virtualHosts ?? []).map((h) => h.toLowerCase())
  const maxClockSkew = positive(options.maxClockSkew, 'maxClockSkew', DEFAULTS.maxClockSkew)
  const uploadMaxAge = positive(options.uploadMaxAge, 'uploadMaxAge', DEFAULTS.uploadMaxAge)
  const cleanupInterval = positive(options.cleanupInterval, 'cleanupInterval', Math.min(3600_000, uploadMaxAge), true)
  const maxHeaderSize = positive(options.maxHeaderSize, 'maxHeaderSize', DEFAULTS.maxHeaderSize)
  const log = options.logger ?? silentLogger
  const deps: Deps = {
    server,
    region,
    ownerId: createHash('sha256').update(`dcas-s3-owner:${credentials[0]!.accessKeyId}`).digest('hex'),
    minPartSize: positive(options.minPartSize, 'minPartSize', DEFAULTS.minPartSize),
    maxPutSize: positive(options.maxPutSize, 'maxPutSize', DEFAULTS.maxPutSize),
    maxUploads: positive(options.maxUploads, 'maxUploads', DEFAULTS.maxUploads),
    log,
  }

  const inFlight = new Set<Promise<unknown>>()
  const track = (work: Promise<unknown>): void => {
    const p = work.catch(() => {}).finally(() => inFlight.delete(p))
    inFlight.add(p)
  }
  let closed = false
  let httpServer: HttpServer | undefined
  let url: string | undefined
  const continued = new WeakSet<IncomingMessage>()

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now()
    const ctx = new S3Context(req, res, virtualHosts, continued.has(req))
    try {
      if (closed) throw new S3Error('ServiceUnavailable', 'The gateway is shutting down.')
      if (ctx.invalid !== undefined) throw ctx.invalid
      ctx.auth = verifySignature(ctx.signable, { secretOf: (id) => secrets.get(id), region, now: Date.now(), maxClockSkew })
      await route(deps, ctx, track)
    } catch (err) {
      const s3 = toS3Error(err)
      if (s3.code === 'InternalError') log.error({ method: ctx.method, resource: ctx.resource, err: messageOf(err) }, 's3: request failed')
      if (!ctx.signal.aborted) ctx.sendError(s3)
    }
    log.debug({ method: ctx.method, resource: ctx.resource, status: res.statusCode, ms: Math.round(performance.now() - started) }, 's3: request')
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => track(handle(req, res))
  const checkContinue = (req: IncomingMessage, res: ServerResponse): void => {
    continued.add(req)
    handler(req, res)
  }
  const clientError = (err: Error, socket: Duplex): void => {
    const code = (err as NodeJS.ErrnoException).code
    // A response already under way on this socket (a handler answered before the body ended) is not followed by another.
    const answering = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true
    if (code === 'ECONNRESET' || !socket.writable || answering) {
      socket.destroy()
      return
    }
    const error =
      code === 'HPE_HEADER_OVERFLOW'
        ? new S3Error('RequestHeaderSectionTooLarge', `Your request header section exceeds the maximum allowed size (${maxHeaderSize} bytes).`)
        : code === 'HPE_INVALID_EOF_STATE'
          ? // The client ended its side before the body its Content-Length announced.
            new S3Error('IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length HTTP header.')
          : new S3Error('InvalidRequest', `The request is not valid HTTP: ${messageOf(err)}`)
    const body = xmlDocument(el('Error', [el('Code', error.code), el('Message', error.message), el('RequestId', randomBytes(8).toString('hex').toUpperCase())]))
    const status = S3_ERRORS[error.code]
    socket.end(`HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\nContent-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  }

  let cleaning: Promise<CleanupResult> | undefined
  const cleanup = (opts: { olderThan?: number } = {}): Promise<CleanupResult> =>
    (cleaning ??= cleanUploads(deps, opts.olderThan ?? Date.now() - uploadMaxAge).finally(() => (cleaning = undefined)))
  const timer =
    cleanupInterval === 0
      ? undefined
      : setInterval(() => {
          if (closed || cleaning !== undefined) return
          track(cleanup().catch((err: unknown) => log.warn({ err: messageOf(err) }, 's3: cleaning incomplete uploads failed; trying again later')))
        }, cleanupInterval)
  timer?.unref()

  return {
    handler,
    checkContinue,
    clientError,
    get url() {
      return url
    },
    async listen(address: string): Promise<string> {
      if (httpServer !== undefined) throw new InvalidOptionsError('the gateway is already listening')
      const { host, port } = parseListenAddress(address)
      // No request timeout: a 5 GiB upload may take long; headers must come within a minute.
      const s = createHttpServer({ maxHeaderSize, requestTimeout: 0, headersTimeout: 60_000 }, handler)
      s.on('checkContinue', checkContinue)
      s.on('clientError', clientError)
      httpServer = s
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject)
        s.listen(port, host, () => {
          s.off('error', reject)
          resolve()
        })
      })
      const bound = s.address()
      const boundPort = typeof bound === 'object' && bound !== null ? bound.port : port
      url = `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}`
      log.info({ url, region }, 's3: listening')
      return url
    },
    cleanup,
    async close(): Promise<void> {
      if (closed) return
      closed = true
      if (timer !== undefined) clearInterval(timer)
      const s = httpServer
      if (s !== undefined) {
        const done = new Promise<void>((resolve) => s.close(() => resolve()))
        s.closeIdleConnections()
        await Promise.allSettled([...inFlight])
        s.closeAllConnections()
        await done
      }
      while (inFlight.size > 0) await Promise.allSettled([...inFlight])
    },
  }
}
