// A gateway on 127.0.0.1 over a server for each test, an SDK client for it, and raw requests signed
// by the AWS SDK's own signer (for the forms the SDK client does not send by itself).
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { S3Client } from '@aws-sdk/client-s3'
import { Hash } from '@smithy/hash-node'
import { SignatureV4 } from '@smithy/signature-v4'
import { createS3Gateway, type S3Gateway, type S3GatewayOptions } from '../src/index.js'
import type { GatewayOpenObject, GatewayServer } from '../src/store-api.js'

export const credentials = { accessKeyId: 'DCTESTACCESSKEY00001', secretAccessKey: 'test-secret-key-0123456789abcdefghij' }

export interface Harness {
  gateway: S3Gateway
  url: string
  port: number
  client: S3Client
  server: GatewayServer
}

export async function startGateway(server: GatewayServer, options: Partial<S3GatewayOptions> = {}): Promise<Harness> {
  const gateway = createS3Gateway({ server, credentials, cleanupInterval: 0, ...options })
  const url = await gateway.listen('127.0.0.1:0')
  const client = new S3Client({ endpoint: url, region: 'us-east-1', credentials, forcePathStyle: true, maxAttempts: 1 })
  return { gateway, url, port: Number(new URL(url).port), client, server }
}

export const signer = (secret = credentials.secretAccessKey): SignatureV4 =>
  new SignatureV4({ credentials: { ...credentials, secretAccessKey: secret }, region: 'us-east-1', service: 's3', sha256: Hash.bind(null, 'sha256'), uriEscapePath: false, applyChecksum: false })

export interface RawResponse {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

/** Sends one request to the gateway and collects the answer (small bodies only). */
export function send(port: number, method: string, path: string, headers: Record<string, string>, body?: Buffer | AsyncIterable<Uint8Array>): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      const pieces: Buffer[] = []
      res.on('data', (p: Buffer) => pieces.push(p))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(pieces) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    if (body === undefined) req.end()
    else if (Buffer.isBuffer(body)) req.end(body)
    else {
      void (async () => {
        try {
          for await (const piece of body) if (!req.write(piece)) await new Promise((r) => req.once('drain', r))
          req.end()
        } catch (err) {
          req.destroy(err as Error)
        }
      })()
    }
  })
}

/** A request signed by the SDK's SignatureV4 (path already encoded); resolves to its headers (with authorization). */
export async function signHeaders(port: number, method: string, path: string, headers: Record<string, string>, options: { secret?: string; date?: Date; query?: Record<string, string> } = {}): Promise<Record<string, string>> {
  const signed = await signer(options.secret).sign(
    { method, protocol: 'http:', hostname: '127.0.0.1', port, path, query: options.query ?? {}, headers: { host: `127.0.0.1:${port}`, ...headers } },
    options.date === undefined ? {} : { signingDate: options.date },
  )
  return signed.headers
}

/** The value of `Signature=` in an Authorization header. */
export const signatureOf = (headers: Record<string, string>): string => /Signature=([0-9a-f]{64})/.exec(headers.authorization ?? '')![1]!

/** S3's error code in an XML error body. */
export const errorCode = (body: Buffer): string | undefined => /<Code>([^<]+)<\/Code>/.exec(body.toString())?.[1]

export async function text(body: AsyncIterable<Uint8Array> | undefined): Promise<Buffer> {
  const pieces: Buffer[] = []
  for await (const p of body ?? []) pieces.push(Buffer.from(p))
  return Buffer.concat(pieces)
}

/** The bytes of `key`'s current version on `server`, read through one opened version. */
export async function readAll(server: GatewayServer, key: string): Promise<Buffer> {
  const object = await server.open(key)
  try {
    return await text(object.read())
  } finally {
    object.close()
  }
}

/** `server` as the gateway sees it, with some of its methods replaced (to inject a failure or a race). */
export function over(server: GatewayServer, replaced: Partial<GatewayServer>): GatewayServer {
  return {
    store: (key, data, options) => server.store(key, data, options),
    compose: (key, sources, options) => server.compose(key, sources, options),
    open: (key, options) => server.open(key, options),
    stat: (key) => server.stat(key),
    has: (key) => server.has(key),
    list: (options) => server.list(options),
    delete: (key, options) => server.delete(key, options),
    ...replaced,
  }
}

/** Counts the versions the gateway opens and closes over `server`. */
export class OpenTracker {
  opened = 0
  closed = 0
  #idle: Array<() => void> = []

  constructor(readonly server: GatewayServer) {}

  /** `server` whose open() is counted, and then handed to `then` (which may delay, race, or wrap it). */
  wrap(then: (object: GatewayOpenObject, key: string) => Promise<GatewayOpenObject> | GatewayOpenObject = (o) => o): GatewayServer {
    return over(this.server, {
      open: async (key, options) => {
        const object = await this.server.open(key, options)
        this.opened++
        let open = true
        const counted: GatewayOpenObject = {
          stat: object.stat,
          read: (o) => object.read(o),
          close: () => {
            object.close()
            if (!open) return
            open = false
            this.closed++
            if (this.opened === this.closed) for (const resolve of this.#idle.splice(0)) resolve()
          },
        }
        return then(counted, key)
      },
    })
  }

  /** Resolves once every version opened so far is closed. */
  idle(): Promise<void> {
    if (this.opened === this.closed) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }
}
