// One version per answer: a GET's headers and body, a copy's checked conditions, bytes and metadata,
// all come from the version the gateway resolved, however the key changes meanwhile; and every
// version the gateway opens is closed again, whatever the answer was.
import { createHash, randomBytes } from 'node:crypto'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { Readable } from 'node:stream'
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCopyCommand,
  type S3ServiceException,
} from '@aws-sdk/client-s3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { GatewayOpenObject } from '../src/store-api.js'
import { OpenTracker, signHeaders, startGateway, text, type Harness } from './helpers.js'
import { makeServer } from './server.js'

const MiB = 1024 * 1024
/** Small chunks: a version has many, so most of a slow GET's are read after the key changed (a read fetches a few ahead). */
const CHUNK = 64 * 1024
const md5 = (b: Buffer): string => `"${createHash('md5').update(b).digest('hex')}"`

let h: Harness
let tracker: OpenTracker
let closeServer: () => Promise<void>
/** Runs on each version the gateway opens, before the gateway gets it (set by a test). */
let onOpen: ((object: GatewayOpenObject, key: string) => Promise<GatewayOpenObject> | GatewayOpenObject) | undefined
/** Called after each test: releases what a test left waiting. */
const releases: Array<() => void> = []

beforeEach(async () => {
  const { server, close } = await makeServer({ chunkSize: CHUNK })
  closeServer = close
  tracker = new OpenTracker(server)
  onOpen = undefined
  h = await startGateway(tracker.wrap((object, key) => onOpen?.(object, key) ?? object))
  await h.client.send(new CreateBucketCommand({ Bucket: 'photos' }))
})

afterEach(async () => {
  for (const release of releases.splice(0)) release()
  h.client.destroy()
  await h.gateway.close()
  await closeServer()
})

/** Runs `race` once, right after the gateway opens `key` the first time (the version is resolved; the answer not begun). */
function afterFirstOpen(key: string, race: () => Promise<unknown>): void {
  let done = false
  onOpen = async (object, opened) => {
    if (opened === key && !done) {
      done = true
      await race()
    }
    return object
  }
}

/** A version whose reads yield their first piece, then wait for `gate` (or their signal, as a server's reads do) before the rest. */
function gated(object: GatewayOpenObject, gate: Promise<void>): GatewayOpenObject {
  return {
    stat: object.stat,
    close: () => object.close(),
    read: (options) => {
      const inner = object.read(options)
      const signal = options?.signal
      const aborted = new Promise<never>((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true }))
      aborted.catch(() => {})
      const pieces = async function* (): AsyncGenerator<Buffer> {
        let first = true
        try {
          for await (const piece of inner as AsyncIterable<Buffer>) {
            yield piece
            if (first) await Promise.race([gate, aborted])
            first = false
          }
        } finally {
          inner.destroy()
        }
      }
      return Readable.from(pieces(), { objectMode: false, highWaterMark: 1 })
    },
  }
}

/** A gate and the function that opens it (also called after the test). */
function gate(): { gate: Promise<void>; open: () => void } {
  let open!: () => void
  const promise = new Promise<void>((resolve) => (open = resolve))
  releases.push(open)
  return { gate: promise, open }
}

/** A signed GET whose response is handed over at its headers, the body left unread. */
async function getResponse(path: string): Promise<IncomingMessage> {
  const headers = await signHeaders(h.port, 'GET', path, { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' })
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: h.port, method: 'GET', path, headers }, resolve)
    req.on('error', reject)
    req.end()
  })
}

const failure = async (p: Promise<unknown>): Promise<{ name: string; status: number | undefined }> => {
  try {
    await p
  } catch (err) {
    const e = err as S3ServiceException
    return { name: e.name, status: e.$metadata?.httpStatusCode }
  }
  throw new Error('expected a failure')
}

describe('a GET', () => {
  it('answers the ETag, headers and bytes of the version it resolved, though the key is overwritten right after', async () => {
    const one = randomBytes(2 * MiB + 3)
    const two = randomBytes(MiB + 7)
    await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'race', Body: one, ContentType: 'text/x-one', Metadata: { v: '1' } }))
    afterFirstOpen('photos/race', () => h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'race', Body: two, ContentType: 'text/x-two', Metadata: { v: '2' } })))
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'race' }))
    expect([got.ETag, got.ContentType, got.Metadata, got.ContentLength]).toEqual([md5(one), 'text/x-one', { v: '1' }, one.length])
    expect((await text(got.Body as Readable)).equals(one)).toBe(true)
    // The overwrite did happen: the next GET has the new version, whole.
    const next = await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'race' }))
    expect([next.ETag, next.ContentType, next.Metadata]).toEqual([md5(two), 'text/x-two', { v: '2' }])
    expect((await text(next.Body as Readable)).equals(two)).toBe(true)
    await tracker.idle()
  })

  it('gives a slow reader the whole version it began, after the key is overwritten and deleted meanwhile', async () => {
    const one = randomBytes(3 * MiB + 1)
    await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'slow', Body: one }))
    const { gate: reading, open } = gate()
    onOpen = (object) => gated(object, reading)
    const res = await getResponse('/photos/slow')
    // The headers are out and the body has begun: the key changes twice, and the old version's chunks are no one's but this GET's.
    expect([res.statusCode, res.headers.etag, res.headers['content-length']]).toEqual([200, md5(one), String(one.length)])
    onOpen = undefined
    await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'slow', Body: randomBytes(MiB) }))
    await h.client.send(new DeleteObjectCommand({ Bucket: 'photos', Key: 'slow' }))
    open()
    expect((await text(res)).equals(one)).toBe(true)
    await tracker.idle()
    expect(tracker.opened).toBe(1)
  })

  it('closes the version it opened when the client goes away mid-body', async () => {
    await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'left', Body: randomBytes(2 * MiB) }))
    const { gate: reading } = gate()
    onOpen = (object) => gated(object, reading)
    const res = await getResponse('/photos/left')
    expect(res.statusCode).toBe(200)
    // The body waits on the gate; the client hangs up: the read ends on the request's signal, and the version is closed.
    res.destroy()
    await tracker.idle()
    expect([tracker.opened, tracker.closed]).toEqual([1, 1])
  })

  it('closes the version it opened after each kind of answer: whole, range, empty, 304, 412, 416', async () => {
    const { ETag } = await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'c', Body: 'conditional' }))
    await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'empty', Body: Buffer.alloc(0) }))
    expect((await text((await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'c' }))).Body as Readable)).toString()).toBe('conditional')
    expect((await text((await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'c', Range: 'bytes=2-4' }))).Body as Readable)).toString()).toBe('ndi')
    expect((await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'empty' }))).ContentLength).toBe(0)
    expect((await failure(h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'c', IfNoneMatch: ETag })))).status).toBe(304)
    expect((await failure(h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'c', IfMatch: '"0000"' })))).status).toBe(412)
    expect((await failure(h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'c', Range: 'bytes=50-60' })))).status).toBe(416)
    // A HEAD answers from one stat, and a missing key from the local index: neither opens a version.
    expect((await h.client.send(new HeadObjectCommand({ Bucket: 'photos', Key: 'c' }))).ETag).toBe(ETag)
    expect((await failure(h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'none' })))).name).toBe('NoSuchKey')
    await tracker.idle()
    expect([tracker.opened, tracker.closed]).toEqual([6, 6])
  })
})

describe('a copy', () => {
  it('onto another key copies the version whose conditions it checked, though the source is overwritten right after', async () => {
    const one = randomBytes(2 * MiB + 5)
    const put = await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'src', Body: one, ContentType: 'text/x-one' }))
    afterFirstOpen('photos/src', () => h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'src', Body: randomBytes(MiB), ContentType: 'text/x-two' })))
    const copy = await h.client.send(new CopyObjectCommand({ Bucket: 'photos', Key: 'dst', CopySource: 'photos/src', CopySourceIfMatch: put.ETag }))
    expect(copy.CopyObjectResult?.ETag).toBe(md5(one))
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'dst' }))
    expect([got.ETag, got.ContentType]).toEqual([md5(one), 'text/x-one'])
    expect((await text(got.Body as Readable)).equals(one)).toBe(true)
    await tracker.idle()
  })

  it('onto its own key checks its conditions again when the key changed before the copy took it', async () => {
    const one = randomBytes(MiB + 5)
    const two = randomBytes(MiB + 9)
    const put = await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'self', Body: one, ContentType: 'text/x-one' }))
    // Conditioned on the first version: refused once the key has the second, and the second stays as it was.
    afterFirstOpen('photos/self', () => h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'self', Body: two, ContentType: 'text/x-two' })))
    const refused = failure(h.client.send(new CopyObjectCommand({ Bucket: 'photos', Key: 'self', CopySource: 'photos/self', CopySourceIfMatch: put.ETag, MetadataDirective: 'REPLACE', ContentType: 'text/x-new' })))
    expect(await refused).toEqual({ name: 'PreconditionFailed', status: 412 })
    const kept = await h.client.send(new HeadObjectCommand({ Bucket: 'photos', Key: 'self' }))
    expect([kept.ETag, kept.ContentType]).toEqual([md5(two), 'text/x-two'])
    // Unconditioned: the metadata is replaced on the version the copy took, its ETag that version's.
    afterFirstOpen('photos/self', () => h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'self', Body: one, ContentType: 'text/x-one' })))
    const copy = await h.client.send(new CopyObjectCommand({ Bucket: 'photos', Key: 'self', CopySource: 'photos/self', MetadataDirective: 'REPLACE', ContentType: 'text/x-new' }))
    expect(copy.CopyObjectResult?.ETag).toBe(md5(one))
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'self' }))
    expect([got.ETag, got.ContentType]).toEqual([md5(one), 'text/x-new'])
    expect((await text(got.Body as Readable)).equals(one)).toBe(true)
    await tracker.idle()
  })

  it('of a range into a part reads the version it resolved, though the source is overwritten right after', async () => {
    const one = randomBytes(2 * MiB + 11)
    await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'big', Body: one }))
    const { UploadId } = await h.client.send(new CreateMultipartUploadCommand({ Bucket: 'photos', Key: 'assembled' }))
    afterFirstOpen('photos/big', () => h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'big', Body: randomBytes(2 * MiB + 11) })))
    const range = one.subarray(100, MiB + 200)
    const part = await h.client.send(new UploadPartCopyCommand({ Bucket: 'photos', Key: 'assembled', UploadId, PartNumber: 1, CopySource: 'photos/big', CopySourceRange: `bytes=100-${MiB + 199}` }))
    expect(part.CopyPartResult?.ETag).toBe(md5(range))
    await h.client.send(new CompleteMultipartUploadCommand({ Bucket: 'photos', Key: 'assembled', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.CopyPartResult?.ETag }] } }))
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'assembled' }))
    expect((await text(got.Body as Readable)).equals(range)).toBe(true)
    await tracker.idle()
  })

  it('of a whole source into a part shares the chunks of the version it checked, though the source is overwritten right after', async () => {
    const one = randomBytes(MiB + 11)
    const put = await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'whole', Body: one }))
    const { UploadId } = await h.client.send(new CreateMultipartUploadCommand({ Bucket: 'photos', Key: 'assembled' }))
    afterFirstOpen('photos/whole', () => h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'whole', Body: randomBytes(MiB) })))
    const part = await h.client.send(new UploadPartCopyCommand({ Bucket: 'photos', Key: 'assembled', UploadId, PartNumber: 1, CopySource: 'photos/whole', CopySourceIfMatch: put.ETag }))
    expect(part.CopyPartResult?.ETag).toBe(md5(one))
    await h.client.send(new CompleteMultipartUploadCommand({ Bucket: 'photos', Key: 'assembled', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.CopyPartResult?.ETag }] } }))
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'assembled' }))
    expect((await text(got.Body as Readable)).equals(one)).toBe(true)
    await tracker.idle()
  })
})
