// One S3 request as the gateway handles it: the parsed target (bucket and key, from the path or the
// Host), query and headers, its verified signature, the client-gone signal, and the answers (XML,
// empty, or S3's XML error). Each operation gets this one object and nothing else of HTTP.
import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { S3Error } from './errors.js'
import { decodePath, parseQuery, type Authenticated, type SignableRequest } from './sigv4.js'
import { el, xmlDocument, type Xml } from './xml.js'

/** A request's parsed parts and its answer. */
export class S3Context {
  readonly requestId = randomBytes(8).toString('hex').toUpperCase()
  readonly method: string
  /** The path as sent, still percent-encoded. */
  readonly rawPath: string
  readonly query: Array<[string, string]>
  /** Header (lowercase) → its values in the order sent. */
  readonly headers = new Map<string, string[]>()
  /** The bucket, from the Host (virtual-host style) or the path's first segment. */
  readonly bucket: string | undefined
  /** The object key: the rest of the path, decoded. */
  readonly key: string | undefined
  /** Set once the signature is verified. */
  auth: Authenticated | undefined
  /** Why the URL could not be parsed (a malformed percent escape), if it could not. */
  readonly invalid: S3Error | undefined
  /** Aborted when the client goes away before the answer is complete. */
  readonly signal: AbortSignal
  #gone = new AbortController()

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    virtualHosts: readonly string[],
    /** Whether the client awaits `100 Continue` from us before it sends the body (Node did not send it). */
    readonly awaitsContinue = false,
  ) {
    this.method = (req.method ?? 'GET').toUpperCase()
    let url = req.url ?? '/'
    if (!url.startsWith('/')) url = url.replace(/^[a-z]+:\/\/[^/]*/i, '') || '/' // absolute-form
    const q = url.indexOf('?')
    this.rawPath = q < 0 ? url : url.slice(0, q)
    let path = '/'
    let query: Array<[string, string]> = []
    try {
      path = decodePath(this.rawPath)
      query = parseQuery(q < 0 ? '' : url.slice(q + 1))
    } catch (err) {
      this.invalid = err instanceof S3Error ? err : new S3Error('InvalidURI', 'Could not parse the specified URI.', { cause: err })
    }
    this.query = query
    const raw = req.rawHeaders
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase()
      const list = this.headers.get(name)
      if (list === undefined) this.headers.set(name, [raw[i + 1]!])
      else list.push(raw[i + 1]!)
    }
    const host = (this.header('host') ?? '').toLowerCase().replace(/:\d+$/, '')
    const suffix = virtualHosts.find((h) => host.endsWith(`.${h}`))
    if (suffix !== undefined) {
      this.bucket = host.slice(0, host.length - suffix.length - 1)
      this.key = path.length > 1 ? path.slice(1) : undefined
    } else {
      const rest = path.slice(1)
      const slash = rest.indexOf('/')
      this.bucket = rest === '' ? undefined : slash < 0 ? rest : rest.slice(0, slash)
      const key = slash < 0 ? '' : rest.slice(slash + 1)
      this.key = key === '' ? undefined : key
    }
    this.signal = this.#gone.signal
    res.once('close', () => {
      if (!res.writableFinished) this.#gone.abort(new S3Error('IncompleteBody', 'the client went away'))
    })
    req.once('error', () => this.#gone.abort(new S3Error('IncompleteBody', 'the request stream failed')))
  }

  /** What the signature covers. */
  get signable(): SignableRequest {
    return { method: this.method, rawPath: this.rawPath, query: this.query, headers: this.headers }
  }

  /** A header's values joined by commas, or `undefined`. */
  header(name: string): string | undefined {
    return this.headers.get(name)?.join(',')
  }

  /** A query parameter's (first) value, or `undefined` when absent. */
  param(name: string): string | undefined {
    return this.query.find(([n]) => n === name)?.[1]
  }

  has(name: string): boolean {
    return this.query.some(([n]) => n === name)
  }

  /** Tells a client that sent `Expect: 100-continue` to send its body: once the request is found acceptable. */
  continueBody(): void {
    if (this.awaitsContinue && !this.#continued && !this.res.headersSent) this.res.writeContinue()
    this.#continued = true
  }

  #continued = false

  /** `/bucket/key` as S3 names the resource in errors. */
  get resource(): string {
    return `/${this.bucket ?? ''}${this.key === undefined ? '' : `/${this.key}`}`
  }

  /** Answers with an XML document. */
  sendXml(status: number, root: Xml, headers: Record<string, string> = {}): void {
    const body = Buffer.from(xmlDocument(root), 'utf8')
    this.#head(status, { 'content-type': 'application/xml', 'content-length': String(body.length), ...headers })
    this.res.end(this.method === 'HEAD' ? undefined : body)
  }

  /** Answers with no body (`content-length` as given, for a HEAD). */
  sendEmpty(status: number, headers: Record<string, string> = {}): void {
    this.#head(status, { ...(headers['content-length'] === undefined ? { 'content-length': '0' } : {}), ...headers })
    this.res.end()
  }

  /** Writes the status and headers (with the request id) without ending. */
  writeHead(status: number, headers: Record<string, string>): void {
    this.#head(status, headers)
  }

  #head(status: number, headers: Record<string, string>): void {
    // A body the client is still sending, and that nobody will read, is not worth reading: close after the answer.
    const unread = !this.req.complete && !this.req.readableEnded
    this.res.writeHead(status, { 'x-amz-request-id': this.requestId, 'x-amz-id-2': this.requestId, server: 'dcas', ...(unread ? { connection: 'close' } : {}), ...headers })
  }

  /** Answers with S3's XML error; when the answer has begun, cuts the connection instead. */
  sendError(err: S3Error): void {
    if (this.res.headersSent) {
      this.res.destroy(err)
      return
    }
    const root = el('Error', [el('Code', err.code), el('Message', err.message), ...err.fields.map(([name, value]) => el(name, value)), el('Resource', this.resource), el('RequestId', this.requestId)])
    this.sendXml(err.status, root)
  }
}
