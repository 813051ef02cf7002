// A client of a running node's HTTP API, found through `DIR/api.json`: what the `dcas`
// commands use. Bodies stream both ways; every error becomes a typed CliError that says
// what to do.
import { createHash } from 'node:crypto'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { access } from 'node:fs/promises'
import { resolve } from 'node:path'
import { Transform, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { DeleteResult, DrainResult, ScrubResult, StoreResult } from '@dcas/server'
import { paths } from './config.js'
import { readApiFile, waitForApiFile } from './api-file.js'
import {
  AbortedError,
  ApiError,
  type CliError,
  IntegrityError,
  InvalidKeyError,
  NotFoundError,
  NotInitializedError,
  NotRunningError,
  QuorumError,
  UnauthorizedError,
  UnavailableError,
  UsageError,
  codeOf,
  messageOf,
  throwIfAborted,
  type QuorumDetails,
} from './errors.js'
import type { ApiErrorBody, ListPage } from './http.js'
import type { NodeStatus, PeerStatus } from './status.js'

/** Where the node is: its data directory (read `api.json`), or the URL and token themselves. */
export type ConnectOptions =
  | {
      root: string
      signal?: AbortSignal
      /** Called once when the node's `dcas serve` is still starting: `connect` waits for it (a minute at most). */
      onStarting?: (pid: number) => void
    }
  | { url: string; token: string; signal?: AbortSignal }

/** Options taking a signal and a progress callback. */
export interface TransferOptions {
  signal?: AbortSignal
  /** Called with the bytes moved so far, as they move. */
  onProgress?: (bytes: number) => void
}

/** Options of {@link DcasClient.put}. */
export interface PutOptions extends TransferOptions {
  /** The size in bytes, when known (sent as `Content-Length`). */
  size?: number
}

/** Options of {@link DcasClient.get}. */
export interface GetOptions extends TransferOptions {
  /** First byte (default 0). */
  offset?: number
  /** How many bytes (default: to the end). */
  length?: number
}

/** An object's metadata, as `HEAD` answers it. */
export interface ObjectInfo {
  key: string
  size: number
  sha256: string
  version: number
  chunks: number
  updatedAt: number
  /** Peers that acknowledged this version. */
  replicas: string[]
}

/** What {@link DcasClient.get} resolves to: the metadata, then the bytes. */
export interface GetResult {
  /** The whole object's metadata. */
  info: ObjectInfo
  /** First byte of `body` in the object. */
  offset: number
  /** Bytes in `body`. */
  length: number
  /**
   * The bytes, streamed. It fails (never ends cleanly) when the node breaks off the transfer,
   * and, for a whole object, when the bytes do not hash to its SHA-256 (`ERR_INTEGRITY`).
   */
  body: AsyncIterable<Uint8Array>
}

/** What can be put: bytes, a string, or a stream of bytes. */
export type PutData = Uint8Array | string | AsyncIterable<Uint8Array>

/** A client of one node's HTTP API. */
export interface DcasClient {
  /** The API's URL. */
  readonly url: string
  /** Stores `data` under `key`; resolves once the node committed it and its write quorum acknowledged. */
  put(key: string, data: PutData, options?: PutOptions): Promise<StoreResult>
  /** Streams an object (or a byte range of it). */
  get(key: string, options?: GetOptions): Promise<GetResult>
  /** The object's metadata. */
  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo>
  /** Deletes the object on the node and its peers. */
  delete(key: string, options?: { signal?: AbortSignal }): Promise<DeleteResult>
  /** One page of keys in order. */
  list(options?: { prefix?: string; limit?: number; after?: string; signal?: AbortSignal }): Promise<ListPage>
  /** Every key with `prefix`, page by page. */
  listAll(options?: { prefix?: string; signal?: AbortSignal }): AsyncGenerator<ListPage['objects'][number]>
  /** The node's status. */
  status(options?: { signal?: AbortSignal }): Promise<NodeStatus>
  /** The node's peers: connected or not, and why not. */
  peers(options?: { signal?: AbortSignal }): Promise<PeerStatus[]>
  /** Verifies every object on the node, healing from peers. */
  scrub(options?: { signal?: AbortSignal }): Promise<ScrubResult>
  /** The Prometheus exposition text of `GET /metrics`. */
  metrics(options?: { signal?: AbortSignal }): Promise<string>
  /**
   * Drains the node before it leaves for good: resolves once the replicas it holds for other nodes have moved
   * away (`onProgress` is told how many are left as that changes); the node then stops.
   */
  drain(options?: { signal?: AbortSignal; onProgress?: (remaining: number) => void }): Promise<DrainResult>
  /** A one-time link that opens the node's web console logged in (`dcas open`); only the API token gets one. */
  consoleLink(options?: { signal?: AbortSignal }): Promise<{ url: string; expiresAt: number }>
}

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  )

/** The path of a key, percent-encoded, dots too: a server's router then sees no `.` or `..` path step. */
const objectPath = (key: string): string => `/v1/objects/${encodeURIComponent(key).replaceAll('.', '%2E')}`

/** Connects to a node's HTTP API (nothing is sent until the first call). */
export async function connect(options: ConnectOptions): Promise<DcasClient> {
  throwIfAborted(options.signal)
  if ('url' in options) return new HttpClient(options.url, options.token, undefined)
  const root = resolve(options.root)
  // A node whose `dcas serve` is still starting is waited for.
  const api = (await readApiFile(root)) ?? (await waitForApiFile(root, { ...(options.signal === undefined ? {} : { signal: options.signal }), ...(options.onStarting === undefined ? {} : { onStarting: options.onStarting }) }))
  if (api === undefined) {
    if (!(await exists(paths(root).config))) {
      throw new NotInitializedError(`there is no dcas node in ${root}`, { hint: `create one with: dcas init --root ${root}, then start it: dcas serve --root ${root}` })
    }
    throw new NotRunningError(`no dcas node is running for ${root} (${paths(root).api} is missing)`, { hint: `start it with: dcas serve --root ${root}` })
  }
  return new HttpClient(api.url, api.token, root)
}

class HttpClient implements DcasClient {
  constructor(
    readonly url: string,
    readonly token: string,
    readonly root: string | undefined,
  ) {}

  /** Sends a request; resolves with the response once its headers are in (any status). */
  async #send(method: string, path: string, options: { signal?: AbortSignal; headers?: Record<string, string>; body?: AsyncIterable<Uint8Array>; onSent?: (n: number) => void }): Promise<IncomingMessage> {
    const { signal } = options
    throwIfAborted(signal)
    // The path goes as it is: a URL would take an encoded dot (`%2E`) for a path step and drop it.
    const base = new URL(this.url)
    const req = httpRequest({ protocol: base.protocol, hostname: base.hostname.replace(/^\[|\]$/g, ''), port: base.port, path: `${base.pathname.replace(/\/$/, '')}${path}`, method, headers: { authorization: `Bearer ${this.token}`, ...options.headers }, ...(signal === undefined ? {} : { signal }) })
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve)
      req.once('error', reject)
      // A request destroyed without an error (pipeline does that when the source fails) only closes.
      req.once('close', () => reject(new Error('the request closed before the node answered')))
    })
    let sourceError = undefined as Error | undefined
    let sending: Promise<void> = Promise.resolve()
    if (options.body === undefined) {
      req.end()
    } else {
      const body = options.body
      let sent = 0
      const meter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          sent += chunk.length
          options.onSent?.(sent)
          done(null, chunk)
        },
      })
      async function* tagged(): AsyncGenerator<Uint8Array> {
        try {
          for await (const piece of body) yield piece
        } catch (err) {
          sourceError = err instanceof Error ? err : new Error(messageOf(err))
          throw sourceError
        }
      }
      sending = pipeline(tagged(), meter, req)
    }
    const [sent, answered] = await Promise.allSettled([sending, response])
    if (sourceError !== undefined) throw sourceError
    if (answered.status === 'fulfilled') return answered.value // the node's answer wins, even if it cut the upload short
    if (signal?.aborted === true) throw new AbortedError(undefined, { cause: signal.reason })
    throw this.#connectionError(answered.reason ?? (sent.status === 'rejected' ? sent.reason : undefined))
  }

  #connectionError(err: unknown): CliError {
    const where = this.root === undefined ? this.url : `${this.root} (${this.url})`
    const code = codeOf(err)
    if (code === 'ECONNREFUSED') {
      return new NotRunningError(`the dcas node for ${where} is not running: its API refused the connection`, {
        cause: err,
        hint: this.root === undefined ? 'start the node with dcas serve' : `start it with: dcas serve --root ${this.root} (its api.json was left by a run that ended abruptly)`,
      })
    }
    return new UnavailableError(`the connection to the dcas node at ${where} failed: ${messageOf(err)}`, { cause: err, hint: 'check the node is running and see its log' })
  }

  /** Reads a JSON answer, turning an error answer into its CliError. */
  async #json<T>(res: IncomingMessage, what: string): Promise<T> {
    const text = await readText(res)
    if (res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300) return JSON.parse(text) as T
    throw this.#errorOf(res, text, what)
  }

  #errorOf(res: IncomingMessage, text: string, what: string): CliError {
    const status = res.statusCode ?? 0
    let body: ApiErrorBody['error'] | undefined
    try {
      body = (JSON.parse(text) as ApiErrorBody).error
    } catch {
      body = undefined
    }
    const message = body?.message ?? (text.trim() || `HTTP ${status}`)
    switch (body?.code) {
      case 'ERR_UNAUTHORIZED':
        return new UnauthorizedError(`the node at ${this.url} refused the token: ${message}`, {
          hint: this.root === undefined ? 'check the token' : `another run of the node now owns ${paths(this.root).api}; if none is running, start one: dcas serve --root ${this.root}`,
        })
      case 'ERR_NOT_FOUND':
        return new NotFoundError(`${what}: ${message}`, { hint: 'list the keys with dcas ls' })
      case 'ERR_INVALID_KEY':
        return new InvalidKeyError(message, { hint: 'keys are 1 to 1024 bytes of UTF-8 without NUL' })
      case 'ERR_QUORUM': {
        const details = body.details as QuorumDetails | undefined
        return new QuorumError(message, details, {
          hint:
            details?.committed === false
              ? 'nothing was stored: too few of the nodes that should hold it can be reached (see dcas status); a node alone stores with --write-quorum 0'
              : 'the object is stored on this node and is copied to its missing holders in the background; check them with dcas status',
        })
      }
      case 'ERR_UNAVAILABLE':
        return new UnavailableError(`${what}: ${message}`, { hint: 'a chunk is lost here and no connected peer has it: check dcas status for peers, then dcas scrub' })
      case 'ERR_RANGE':
        return new UsageError(`${what}: ${message}`, { hint: 'give an --offset inside the object (dcas stat shows its size)' })
      case 'ERR_CLOSED':
        return new NotRunningError(`the node is shutting down: ${message}`, { hint: 'start it again with dcas serve, then retry' })
      default:
        if (body === undefined && status === 401) return new UnauthorizedError(`the node at ${this.url} refused the token`)
        return new ApiError(`${what}: the node answered ${status}${body?.code === undefined ? '' : ` ${body.code}`}: ${message}`, status, body?.code)
    }
  }

  async put(key: string, data: PutData, options: PutOptions = {}): Promise<StoreResult> {
    const hash = createHash('sha256')
    let size = 0
    const source = typeof data === 'string' || data instanceof Uint8Array ? [typeof data === 'string' ? Buffer.from(data) : data] : data
    async function* hashed(): AsyncGenerator<Uint8Array> {
      for await (const piece of source) {
        hash.update(piece)
        size += piece.length
        yield piece
      }
    }
    const known = options.size ?? (typeof data === 'string' ? Buffer.byteLength(data) : data instanceof Uint8Array ? data.length : undefined)
    const res = await this.#send('PUT', objectPath(key), {
      headers: { 'content-type': 'application/octet-stream', ...(known === undefined ? {} : { 'content-length': String(known) }) },
      body: hashed(),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.onProgress === undefined ? {} : { onSent: options.onProgress }),
    })
    const result = await this.#json<StoreResult>(res, `put "${key}"`)
    const sha256 = hash.digest('hex')
    if (result.size !== size || result.sha256 !== sha256) {
      throw new IntegrityError(`the node stored ${result.size} bytes with SHA-256 ${result.sha256}, but ${size} bytes with SHA-256 ${sha256} were sent`, { hint: `put "${key}" again` })
    }
    return result
  }

  async head(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo> {
    const res = await this.#send('HEAD', objectPath(key), options)
    res.resume()
    if (res.statusCode !== 200) {
      // HEAD answers carry no body: say what the status means.
      if (res.statusCode === 404) return Promise.reject(new NotFoundError(`no object is stored under "${key}"`, { hint: 'list the keys with dcas ls' }))
      return Promise.reject(this.#errorOf(res, '', `stat "${key}"`))
    }
    return infoOf(key, res)
  }

  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    const { offset, length } = options
    let range: string | undefined
    if (offset !== undefined || length !== undefined) {
      const start = offset ?? 0
      if (length === 0) throw new UsageError('a length of 0 bytes asks for nothing')
      range = `bytes=${start}-${length === undefined ? '' : start + length - 1}`
    }
    const res = await this.#send('GET', objectPath(key), { ...(options.signal === undefined ? {} : { signal: options.signal }), ...(range === undefined ? {} : { headers: { range } }) })
    if (res.statusCode !== 200 && res.statusCode !== 206) throw this.#errorOf(res, await readText(res), `get "${key}"`)
    const info = infoOf(key, res)
    const expected = Number(res.headers['content-length'])
    const start = res.statusCode === 206 ? Number(/^bytes (\d+)-/.exec(res.headers['content-range'] ?? '')?.[1] ?? 0) : 0
    const whole = res.statusCode === 200
    const onProgress = options.onProgress
    async function* body(): AsyncGenerator<Uint8Array> {
      const hash = createHash('sha256')
      let received = 0
      try {
        for await (const piece of res as AsyncIterable<Buffer>) {
          received += piece.length
          if (whole) hash.update(piece)
          onProgress?.(received)
          yield piece
        }
      } catch (err) {
        throw new UnavailableError(`the node broke off "${key}" after ${received} of ${expected} bytes`, { cause: err, hint: 'a chunk may be lost with no peer to heal it: see the node log, dcas status and dcas scrub' })
      }
      if (received !== expected) throw new UnavailableError(`the node sent ${received} of ${expected} bytes of "${key}"`, { hint: 'see the node log' })
      if (whole && hash.digest('hex') !== info.sha256) throw new IntegrityError(`the bytes received for "${key}" do not hash to its SHA-256 ${info.sha256}`, { hint: 'get it again; if it persists, run dcas scrub' })
    }
    return { info, offset: start, length: expected, body: body() }
  }

  async delete(key: string, options: { signal?: AbortSignal } = {}): Promise<DeleteResult> {
    return this.#json(await this.#send('DELETE', objectPath(key), options), `rm "${key}"`)
  }

  async list(options: { prefix?: string; limit?: number; after?: string; signal?: AbortSignal } = {}): Promise<ListPage> {
    const query = new URLSearchParams()
    if (options.prefix !== undefined) query.set('prefix', options.prefix)
    if (options.limit !== undefined) query.set('limit', String(options.limit))
    if (options.after !== undefined) query.set('after', options.after)
    const qs = query.size > 0 ? `?${query.toString()}` : ''
    return this.#json(await this.#send('GET', `/v1/objects${qs}`, options.signal === undefined ? {} : { signal: options.signal }), 'ls')
  }

  async *listAll(options: { prefix?: string; signal?: AbortSignal } = {}): AsyncGenerator<ListPage['objects'][number]> {
    let after: string | undefined
    for (;;) {
      const page = await this.list({ ...options, limit: 1000, ...(after === undefined ? {} : { after }) })
      yield* page.objects
      if (page.next === undefined) return
      after = page.next
    }
  }

  async status(options: { signal?: AbortSignal } = {}): Promise<NodeStatus> {
    return this.#json(await this.#send('GET', '/v1/status', options), 'status')
  }

  async peers(options: { signal?: AbortSignal } = {}): Promise<PeerStatus[]> {
    return this.#json(await this.#send('GET', '/v1/peers', options), 'peers')
  }

  async scrub(options: { signal?: AbortSignal } = {}): Promise<ScrubResult> {
    return this.#json(await this.#send('POST', '/v1/scrub', options), 'scrub')
  }

  async drain(options: { signal?: AbortSignal; onProgress?: (remaining: number) => void } = {}): Promise<DrainResult> {
    const res = await this.#send('POST', '/v1/drain', options.signal === undefined ? {} : { signal: options.signal })
    if (res.statusCode !== 200) throw this.#errorOf(res, await readText(res), 'drain')
    let buffered = ''
    res.setEncoding('utf8')
    for await (const piece of res as AsyncIterable<string>) {
      buffered += piece
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = JSON.parse(buffered.slice(0, nl)) as { remaining?: number; drained?: true; held?: number; error?: ApiErrorBody['error'] }
        buffered = buffered.slice(nl + 1)
        if (line.error !== undefined) throw this.#errorOf(res, JSON.stringify({ error: line.error }), 'drain')
        if (line.drained === true) return { held: line.held ?? 0 }
        if (line.remaining !== undefined) options.onProgress?.(line.remaining)
      }
    }
    throw new UnavailableError('the node ended the drain without an answer', { hint: 'see the node log, and run dcas drain again' })
  }

  async consoleLink(options: { signal?: AbortSignal } = {}): Promise<{ url: string; expiresAt: number }> {
    return this.#json(await this.#send('POST', '/v1/session/links', options), 'open')
  }

  async metrics(options: { signal?: AbortSignal } = {}): Promise<string> {
    const res = await this.#send('GET', '/metrics', options)
    const text = await readText(res)
    if (res.statusCode !== 200) throw this.#errorOf(res, text, 'metrics')
    return text
  }
}

function infoOf(key: string, res: IncomingMessage): ObjectInfo {
  const h = res.headers
  const header = (name: string): string => {
    const v = h[name]
    return typeof v === 'string' ? v : ''
  }
  const total = res.statusCode === 206 ? Number(/\/(\d+)$/.exec(header('content-range'))?.[1]) : Number(header('content-length'))
  const replicas = header('x-dcas-replicas')
  return {
    key,
    size: total,
    sha256: header('x-dcas-sha256'),
    version: Number(header('x-dcas-version')),
    chunks: Number(header('x-dcas-chunks')),
    updatedAt: Date.parse(header('last-modified')),
    replicas: replicas === '' ? [] : replicas.split(','),
  }
}

/** Reads a (small) answer body as text. */
async function readText(res: Readable): Promise<string> {
  let text = ''
  res.setEncoding('utf8')
  for await (const piece of res as AsyncIterable<string>) text += piece
  return text
}
