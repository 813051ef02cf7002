// Hostile and broken requests: each gets S3's XML error and stores nothing (an earlier version stays).
import { createHash, randomBytes } from 'node:crypto'
import { CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand, ListMultipartUploadsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { TooLargeError } from '@dcas/server'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { readdir } from 'node:fs/promises'
import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { crc32, crc32c } from '../src/checksum.js'
import { credentials, errorCode, over, readAll, send, signatureOf, signer, signHeaders, startGateway, text, type Harness } from './helpers.js'
import { makeServer } from './server.js'

let h: Harness
let closeServer: () => Promise<void>
let root: string

beforeEach(async () => {
  const made = await makeServer()
  const { server, close } = made
  root = made.root
  closeServer = close
  h = await startGateway(server)
  await h.client.send(new CreateBucketCommand({ Bucket: 'safe' }))
  await h.client.send(new PutObjectCommand({ Bucket: 'safe', Key: 'kept', Body: 'version one' }))
})

afterEach(async () => {
  h.client.destroy()
  await h.gateway.close()
  await closeServer()
})

const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
const hex = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')
const crcBase64 = (n: number): string => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n >>> 0)
  return b.toString('base64')
}

/** The blob files of the node's own store: a refused upload must leave none behind. */
async function blobFiles(): Promise<string[]> {
  const entries = await readdir(join(root, 'blobs'), { recursive: true, withFileTypes: true })
  return entries.filter((e) => e.isFile()).map((e) => e.name).sort()
}

/** What the bucket holds: key → content. */
async function contents(): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const e of await h.server.list({ prefix: 'safe/' })) out[e.key.slice(5)] = (await readAll(h.server, e.key)).toString()
  return out
}
const untouched = { kept: 'version one' }

/** A STREAMING-AWS4-HMAC-SHA256-PAYLOAD body, each chunk signed by the SDK's signer. */
async function signedChunks(key: string, chunks: Buffer[], tamper?: (chunk: Buffer, i: number) => Buffer, trailer?: { name: string; value: string; badSignature?: boolean }) {
  const decoded = chunks.reduce((n, c) => n + c.length, 0)
  const frames = (sigs: string[], trailerLines: string) => {
    const parts: Buffer[] = []
    chunks.forEach((c, i) => parts.push(Buffer.from(`${c.length.toString(16)};chunk-signature=${sigs[i]}\r\n`), tamper?.(c, i) ?? c, Buffer.from('\r\n')))
    parts.push(Buffer.from(`0;chunk-signature=${sigs[chunks.length]}\r\n${trailerLines}\r\n`))
    return Buffer.concat(parts)
  }
  const date = new Date()
  const marker = trailer === undefined ? 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD' : 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER'
  const trailerLine = trailer === undefined ? '' : `${trailer.name}:${trailer.value}\r\n`
  // The length is what it will be: signatures have a fixed size.
  const length = frames(Array<string>(chunks.length + 1).fill('0'.repeat(64)), trailer === undefined ? '' : `${trailerLine}x-amz-trailer-signature:${'0'.repeat(64)}\r\n`).length
  const headers = await signHeaders(h.port, 'PUT', `/safe/${key}`, {
    'x-amz-content-sha256': marker,
    'content-encoding': 'aws-chunked',
    'x-amz-decoded-content-length': String(decoded),
    'content-length': String(length),
    ...(trailer === undefined ? {} : { 'x-amz-trailer': trailer.name }),
  }, { date })
  const amzDate = headers['x-amz-date']!
  const scope = `${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request`
  const sigs: string[] = []
  let previous = signatureOf(headers)
  for (const c of [...chunks, Buffer.alloc(0)]) {
    previous = await signer().sign(['AWS4-HMAC-SHA256-PAYLOAD', amzDate, scope, previous, EMPTY, hex(c)].join('\n'), { signingDate: date })
    sigs.push(previous)
  }
  let trailerLines = ''
  if (trailer !== undefined) {
    const trailerSig = await signer(trailer.badSignature === true ? `${credentials.secretAccessKey}x` : undefined).sign(['AWS4-HMAC-SHA256-TRAILER', amzDate, scope, previous, hex(`${trailer.name}:${trailer.value}\n`)].join('\n'), { signingDate: date })
    trailerLines = `${trailerLine}x-amz-trailer-signature:${trailerSig}\r\n`
  }
  return send(h.port, 'PUT', `/safe/${key}`, headers, frames(sigs, trailerLines))
}

/** A STREAMING-UNSIGNED-PAYLOAD-TRAILER body with the given trailer. */
async function unsignedTrailer(key: string, data: Buffer, trailerName: string, trailerValue: string) {
  const body = Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from(`\r\n0\r\n${trailerName}:${trailerValue}\r\n\r\n`)])
  const headers = await signHeaders(h.port, 'PUT', `/safe/${key}`, {
    'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
    'content-encoding': 'aws-chunked',
    'x-amz-decoded-content-length': String(data.length),
    'content-length': String(body.length),
    'x-amz-trailer': trailerName,
  })
  return send(h.port, 'PUT', `/safe/${key}`, headers, body)
}

describe('streamed uploads with signed chunks', () => {
  const chunks = [randomBytes(65536), randomBytes(65536), randomBytes(1000)]

  it('store the object when every chunk signature holds', async () => {
    const res = await signedChunks('streamed', chunks)
    expect(res.status).toBe(200)
    expect(res.headers.etag).toBe(`"${createHash('md5').update(Buffer.concat(chunks)).digest('hex')}"`)
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'safe', Key: 'streamed' }))
    expect((await text(got.Body as Readable)).equals(Buffer.concat(chunks))).toBe(true)
  })

  it('refuse a tampered chunk and store nothing, keeping the version there was', async () => {
    const blobs = await blobFiles()
    const res = await signedChunks('kept', chunks, (c, i) => (i === 1 ? Buffer.concat([c.subarray(0, 100), Buffer.from([c[100]! ^ 1]), c.subarray(101)]) : c))
    expect(res.status).toBe(403)
    expect(errorCode(res.body)).toBe('SignatureDoesNotMatch')
    expect(await contents()).toEqual(untouched)
    expect(await blobFiles()).toEqual(blobs)
  })

  it('check a signed trailer: its checksum and its signature', async () => {
    const data = Buffer.concat(chunks)
    const good = await signedChunks('trailed', chunks, undefined, { name: 'x-amz-checksum-crc32c', value: crcBase64(crc32c(data)) })
    expect(good.status).toBe(200)
    const badSig = await signedChunks('bad-sig', chunks, undefined, { name: 'x-amz-checksum-crc32c', value: crcBase64(crc32c(data)), badSignature: true })
    expect(errorCode(badSig.body)).toBe('SignatureDoesNotMatch')
    const badSum = await signedChunks('bad-sum', chunks, undefined, { name: 'x-amz-checksum-crc32c', value: crcBase64(crc32c(data) ^ 1) })
    expect(errorCode(badSum.body)).toBe('BadDigest')
    expect(Object.keys(await contents()).sort()).toEqual(['kept', 'trailed'])
  })
})

describe('checksums and payload hashes', () => {
  it('store under a right CRC32 trailer and refuse a wrong one, storing nothing', async () => {
    const data = randomBytes(2_500_000)
    expect((await unsignedTrailer('good', data, 'x-amz-checksum-crc32', crcBase64(crc32(data)))).status).toBe(200)
    const blobs = await blobFiles()
    const bad = await unsignedTrailer('kept', Buffer.concat([data, Buffer.from('more')]), 'x-amz-checksum-crc32', crcBase64(crc32(data) ^ 0x100))
    expect(bad.status).toBe(400)
    expect(errorCode(bad.body)).toBe('BadDigest')
    const sha = await unsignedTrailer('kept', data, 'x-amz-checksum-sha256', createHash('sha256').update('other').digest('base64'))
    expect(errorCode(sha.body)).toBe('BadDigest')
    expect(await blobFiles()).toEqual(blobs)
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'safe', Key: 'good', ChecksumMode: 'ENABLED' }))
    expect(got.ChecksumCRC32).toBe(crcBase64(crc32(data)))
    expect((await text(got.Body as Readable)).equals(data)).toBe(true)
    expect((await contents()).kept).toBe('version one')
  })

  it('refuse a body whose SHA-256 is not the signed one', async () => {
    const headers = await signHeaders(h.port, 'PUT', '/safe/kept', { 'x-amz-content-sha256': hex('what was signed'), 'content-length': '12' })
    const res = await send(h.port, 'PUT', '/safe/kept', headers, Buffer.from('what is sent'))
    expect(res.status).toBe(400)
    expect(errorCode(res.body)).toBe('XAmzContentSHA256Mismatch')
    expect(await contents()).toEqual(untouched)
  })

  it('refuse a wrong Content-MD5 and a wrong x-amz-checksum header', async () => {
    const body = Buffer.from('some content')
    const md5 = await send(h.port, 'PUT', '/safe/kept', await signHeaders(h.port, 'PUT', '/safe/kept', { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'content-md5': createHash('md5').update('other').digest('base64'), 'content-length': String(body.length) }), body)
    expect(errorCode(md5.body)).toBe('BadDigest')
    const crc = await send(h.port, 'PUT', '/safe/kept', await signHeaders(h.port, 'PUT', '/safe/kept', { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'x-amz-checksum-crc32': crcBase64(1), 'content-length': String(body.length) }), body)
    expect(errorCode(crc.body)).toBe('BadDigest')
    expect(await contents()).toEqual(untouched)
  })

  it('store nothing when the client goes away mid-body', async () => {
    const headers = await signHeaders(h.port, 'PUT', '/safe/cut', { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'content-length': String(10 * 1024 * 1024) })
    const body = (async function* () {
      yield await Promise.resolve(randomBytes(1024 * 1024))
      throw new Error('client gone')
    })()
    await expect(send(h.port, 'PUT', '/safe/cut', headers, body)).rejects.toThrow()
    // The gateway has finished with the request once close() returns.
    await h.gateway.close()
    expect(await contents()).toEqual(untouched)
  })
})

describe('signatures', () => {
  it('refuse a wrong secret, an unknown key and an anonymous request, storing nothing', async () => {
    const wrong = new S3Client({ endpoint: h.url, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1, credentials: { ...credentials, secretAccessKey: 'not-the-secret-0123456789' } })
    await expect(wrong.send(new PutObjectCommand({ Bucket: 'safe', Key: 'kept', Body: 'overwritten' }))).rejects.toMatchObject({ name: 'SignatureDoesNotMatch', $metadata: { httpStatusCode: 403 } })
    const unknown = new S3Client({ endpoint: h.url, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1, credentials: { accessKeyId: 'DCUNKNOWN', secretAccessKey: credentials.secretAccessKey } })
    await expect(unknown.send(new PutObjectCommand({ Bucket: 'safe', Key: 'new', Body: 'x' }))).rejects.toMatchObject({ name: 'InvalidAccessKeyId' })
    wrong.destroy()
    unknown.destroy()
    const anonymous = await send(h.port, 'PUT', '/safe/kept', { 'content-length': '3' }, Buffer.from('abc'))
    expect(anonymous.status).toBe(403)
    expect(errorCode(anonymous.body)).toBe('AccessDenied')
    expect(anonymous.headers.connection).toBe('close')
    expect(await contents()).toEqual(untouched)
  })

  it('refuse a request signed an hour ago, and an expired presigned URL', async () => {
    const old = await signHeaders(h.port, 'GET', '/safe/kept', { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' }, { date: new Date(Date.now() - 3600_000) })
    const res = await send(h.port, 'GET', '/safe/kept', old)
    expect(res.status).toBe(403)
    expect(errorCode(res.body)).toBe('RequestTimeTooSkewed')
    const url = await getSignedUrl(h.client, new GetObjectCommand({ Bucket: 'safe', Key: 'kept' }), { expiresIn: 60, signingDate: new Date(Date.now() - 120_000) })
    const expired = await fetch(url)
    expect(expired.status).toBe(403)
    expect(await expired.text()).toContain('Request has expired')
  })
})

describe('malformed requests', () => {
  it('answer MalformedXML to a broken or entity-expanding DeleteObjects, deleting nothing', async () => {
    for (const xml of ['<Delete><Object><Key>kept</Key></Delete>', '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY k "kept">]><Delete><Object><Key>&k;</Key></Object></Delete>', '<Other/>']) {
      const body = Buffer.from(xml)
      const headers = await signHeaders(h.port, 'POST', '/safe', { 'x-amz-content-sha256': hex(body), 'content-length': String(body.length) }, { query: { delete: '' } })
      const res = await send(h.port, 'POST', '/safe?delete', headers, body)
      expect(res.status).toBe(400)
      expect(errorCode(res.body)).toBe('MalformedXML')
    }
    expect(await contents()).toEqual(untouched)
  })

  it('answer IncompleteBody to a body shorter than its Content-Length when the client ends its side, storing nothing', async () => {
    const headers = await signHeaders(h.port, 'PUT', '/safe/short', { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'content-length': '1000' })
    const socket = connect(h.port, '127.0.0.1')
    await once(socket, 'connect')
    const head = [`PUT /safe/short HTTP/1.1`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n')
    socket.write(head)
    socket.end(Buffer.alloc(500, 7))
    const answer: Buffer[] = []
    for await (const piece of socket) answer.push(piece as Buffer)
    const text = Buffer.concat(answer).toString()
    expect(text).toMatch(/^HTTP\/1\.1 400 /)
    expect(text).toContain('<Code>IncompleteBody</Code>')
    expect(await contents()).toEqual(untouched)
  })

  it('answer S3 XML to oversized headers', async () => {
    const res = await send(h.port, 'GET', '/safe/kept', { 'x-amz-meta-big': 'x'.repeat(20_000) })
    expect(res.status).toBe(400)
    expect(errorCode(res.body)).toBe('RequestHeaderSectionTooLarge')
  })

  it('refuse more user metadata than S3 allows', async () => {
    const res = await h.client.send(new PutObjectCommand({ Bucket: 'safe', Key: 'kept', Body: 'x', Metadata: { a: 'y'.repeat(2100) } })).catch((err: unknown) => err)
    expect(res).toMatchObject({ name: 'MetadataTooLarge' })
    expect(await contents()).toEqual(untouched)
  })

  it('refuse, before the body, metadata within S3\'s limits that a dcas object cannot keep', async () => {
    // Quotes count once against S3's limits and twice in the manifest's JSON: 2 KiB of user metadata and two 1000-byte headers fit S3, not 8 KiB.
    const metadata = { 'x-amz-meta-a': '"'.repeat(2040), 'cache-control': '"'.repeat(1020), 'content-disposition': '"'.repeat(1020) }
    expect(Buffer.byteLength(JSON.stringify(metadata))).toBeGreaterThan(8192)
    const path = '/safe/kept'
    const headers = await signHeaders(h.port, 'PUT', path, { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'content-length': '11', expect: '100-continue', ...metadata })
    let continued = false
    const res = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: h.port, method: 'PUT', path, headers }, (r) => {
        void text(r).then((body) => resolve({ status: r.statusCode ?? 0, body }), reject)
      })
      req.on('continue', () => {
        continued = true
        req.end('overwritten')
      })
      req.on('error', reject)
    })
    expect([res.status, errorCode(res.body), continued]).toEqual([400, 'MetadataTooLarge', false])
    expect(await contents()).toEqual(untouched)
  })

  it('refuse a key too long for a dcas key', async () => {
    const res = await h.client.send(new PutObjectCommand({ Bucket: 'safe', Key: 'k'.repeat(1020), Body: 'x' })).catch((err: unknown) => err)
    expect(res).toMatchObject({ name: 'KeyTooLongError' })
  })
})

describe('what the dcas server refuses', () => {
  it('an object with more chunks than the node allows (ERR_TOO_LARGE) is EntityTooLarge, and the earlier version stays', async () => {
    // The real limit takes 131 073 chunks to reach: the server's own error stands in for it, after the body is read as a store reads it.
    const server = over(h.server, {
      store: async (key, data) => {
        for await (const piece of data) void piece
        throw new TooLargeError(`"${key}" needs more than 131072 chunks: store it with a larger chunkSize`)
      },
    })
    const other = await startGateway(server)
    try {
      const res = await other.client.send(new PutObjectCommand({ Bucket: 'safe', Key: 'kept', Body: randomBytes(100_000) })).catch((err: unknown) => err)
      expect(res).toMatchObject({ name: 'EntityTooLarge', $metadata: { httpStatusCode: 400 } })
    } finally {
      other.client.destroy()
      await other.gateway.close()
    }
    expect(await contents()).toEqual(untouched)
  })

  it('metadata the server will not keep (ERR_INVALID_OPTIONS) is MetadataTooLarge, and nothing is stored', async () => {
    // Within what the gateway checks before a body (it leaves room for an ETag and checksums), but an upload's record
    // adds the object's key, here 400 quotes: 800 bytes of JSON, over the server's 8 KiB.
    const Key = '"'.repeat(400)
    const request = { 'x-amz-meta-a': '"'.repeat(1800), 'cache-control': '"'.repeat(1000), 'content-disposition': '"'.repeat(900) }
    const checked = Buffer.byteLength(JSON.stringify(request))
    expect(checked).toBeLessThanOrEqual(8192 - 512)
    expect(checked + Buffer.byteLength(JSON.stringify({ 'upload-key': Key }))).toBeGreaterThan(8192)
    const res = await h.client.send(new CreateMultipartUploadCommand({ Bucket: 'safe', Key, Metadata: { a: request['x-amz-meta-a'] }, CacheControl: request['cache-control'], ContentDisposition: request['content-disposition'] })).catch((err: unknown) => err)
    expect(res).toMatchObject({ name: 'MetadataTooLarge', $metadata: { httpStatusCode: 400 } })
    expect((await h.client.send(new ListMultipartUploadsCommand({ Bucket: 'safe' }))).Uploads ?? []).toEqual([])
  })
})
