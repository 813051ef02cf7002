// The gateway driven by @aws-sdk/client-s3 as an application would: buckets, objects with metadata,
// conditions and ranges, copies, listings with odd keys, presigned URLs, virtual-host style.
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketLocationCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3ServiceException,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { credentials, errorCode, send, signHeaders, startGateway, text, type Harness } from './helpers.js'
import { makeServer } from './server.js'

let h: Harness
let closeServer: () => Promise<void>

beforeEach(async () => {
  const { server, close } = await makeServer()
  closeServer = close
  h = await startGateway(server, { virtualHosts: ['s3.test'] })
  await h.client.send(new CreateBucketCommand({ Bucket: 'photos' }))
})

afterEach(async () => {
  h.client.destroy()
  await h.gateway.close()
  await closeServer()
})

const failure = async (p: Promise<unknown>): Promise<{ name: string; status: number | undefined }> => {
  try {
    await p
  } catch (err) {
    const e = err as S3ServiceException
    return { name: e.name, status: e.$metadata?.httpStatusCode }
  }
  throw new Error('expected a failure')
}

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex')

describe('buckets', () => {
  it('are created, listed, located, checked and deleted only when empty', async () => {
    const { Buckets } = await h.client.send(new ListBucketsCommand({}))
    expect(Buckets?.map((b) => b.Name)).toEqual(['photos'])
    expect(Buckets?.[0]?.CreationDate).toBeInstanceOf(Date)
    await h.client.send(new HeadBucketCommand({ Bucket: 'photos' }))
    expect((await h.client.send(new GetBucketLocationCommand({ Bucket: 'photos' }))).LocationConstraint).toBeUndefined()
    expect(await failure(h.client.send(new CreateBucketCommand({ Bucket: 'photos' })))).toEqual({ name: 'BucketAlreadyOwnedByYou', status: 409 })
    expect((await failure(h.client.send(new CreateBucketCommand({ Bucket: 'Bad_Name' })))).name).toBe('InvalidBucketName')
    await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'a.jpg', Body: 'x' }))
    expect(await failure(h.client.send(new DeleteBucketCommand({ Bucket: 'photos' })))).toEqual({ name: 'BucketNotEmpty', status: 409 })
    await h.client.send(new DeleteObjectCommand({ Bucket: 'photos', Key: 'a.jpg' }))
    await h.client.send(new DeleteBucketCommand({ Bucket: 'photos' }))
    expect((await failure(h.client.send(new HeadBucketCommand({ Bucket: 'photos' })))).status).toBe(404)
    expect((await failure(h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'a.jpg', Body: 'x' })))).name).toBe('NoSuchBucket')
  })
})

describe('objects', () => {
  it('keep their bytes, content type, user metadata and MD5 ETag', async () => {
    const body = randomBytes(300_000)
    const put = await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'dir/a b+c.bin', Body: body, ContentType: 'image/jpeg', Metadata: { camera: 'x100', note: 'hello world' }, CacheControl: 'max-age=60' }))
    expect(put.ETag).toBe(`"${md5(body)}"`)
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'dir/a b+c.bin' }))
    expect((await text(got.Body as Readable)).equals(body)).toBe(true)
    expect(got.ContentType).toBe('image/jpeg')
    expect(got.CacheControl).toBe('max-age=60')
    expect(got.Metadata).toEqual({ camera: 'x100', note: 'hello world' })
    expect(got.ETag).toBe(put.ETag)
    expect(got.ContentLength).toBe(body.length)
    const head = await h.client.send(new HeadObjectCommand({ Bucket: 'photos', Key: 'dir/a b+c.bin' }))
    expect(head.ContentLength).toBe(body.length)
    expect(head.LastModified).toBeInstanceOf(Date)
  })

  it('stream in from a Readable of unknown chunks (aws-chunked with a CRC32 trailer)', async () => {
    const body = randomBytes(2 * 1024 * 1024 + 17)
    const put = await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'streamed', Body: Readable.from([body.subarray(0, 1000), body.subarray(1000)]), ContentLength: body.length }))
    expect(put.ETag).toBe(`"${md5(body)}"`)
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'streamed', ChecksumMode: 'ENABLED' }))
    expect((await text(got.Body as Readable)).equals(body)).toBe(true)
  })

  it('answer ranges with 206 and an unsatisfiable one with 416', async () => {
    const body = Buffer.from('0123456789abcdef')
    await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'r', Body: body }))
    const part = await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'r', Range: 'bytes=3-6' }))
    expect(part.$metadata.httpStatusCode).toBe(206)
    expect(part.ContentRange).toBe('bytes 3-6/16')
    expect((await text(part.Body as Readable)).toString()).toBe('3456')
    const tail = await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'r', Range: 'bytes=-3' }))
    expect((await text(tail.Body as Readable)).toString()).toBe('def')
    expect(await failure(h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'r', Range: 'bytes=16-20' })))).toEqual({ name: 'InvalidRange', status: 416 })
  })

  it('answer If-Match, If-None-Match and If-Modified-Since', async () => {
    const { ETag } = await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'c', Body: 'conditional' }))
    expect((await failure(h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'c', IfNoneMatch: ETag })))).status).toBe(304)
    expect((await failure(h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'c', IfMatch: '"0000"' })))).status).toBe(412)
    expect((await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'c', IfMatch: ETag }))).ETag).toBe(ETag)
    expect((await failure(h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'c', IfModifiedSince: new Date(Date.now() + 60_000) })))).status).toBe(304)
    const since = await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'c', IfModifiedSince: new Date(Date.now() - 3600_000) }))
    expect((await text(since.Body as Readable)).toString()).toBe('conditional')
  })

  it('refuse an overwrite under If-None-Match: * and keep the first version', async () => {
    await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'once', Body: 'first', IfNoneMatch: '*' }))
    expect(await failure(h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'once', Body: 'second', IfNoneMatch: '*' })))).toEqual({ name: 'PreconditionFailed', status: 412 })
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'once' }))
    expect((await text(got.Body as Readable)).toString()).toBe('first')
  })

  it('are missing with NoSuchKey and 404', async () => {
    expect(await failure(h.client.send(new GetObjectCommand({ Bucket: 'photos', Key: 'nope' })))).toEqual({ name: 'NoSuchKey', status: 404 })
    expect((await failure(h.client.send(new HeadObjectCommand({ Bucket: 'photos', Key: 'nope' })))).status).toBe(404)
    // Deleting nothing is no error.
    expect((await h.client.send(new DeleteObjectCommand({ Bucket: 'photos', Key: 'nope' }))).$metadata.httpStatusCode).toBe(204)
  })

  it('are deleted in bulk, missing keys included', async () => {
    for (const k of ['d1', 'd2', 'd&3']) await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: k, Body: k }))
    const res = await h.client.send(new DeleteObjectsCommand({ Bucket: 'photos', Delete: { Objects: [{ Key: 'd1' }, { Key: 'd&3' }, { Key: 'missing' }] } }))
    expect(res.Deleted?.map((d) => d.Key)).toEqual(['d1', 'd&3', 'missing'])
    const { Contents } = await h.client.send(new ListObjectsV2Command({ Bucket: 'photos' }))
    expect(Contents?.map((c) => c.Key)).toEqual(['d2'])
  })

  it('are copied with their metadata, or with new metadata under REPLACE', async () => {
    await h.client.send(new CreateBucketCommand({ Bucket: 'backup' }))
    const body = randomBytes(3 * 1024 * 1024 + 5)
    const put = await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'src/ä.bin', Body: body, ContentType: 'text/x-a', Metadata: { a: '1' } }))
    const copy = await h.client.send(new CopyObjectCommand({ Bucket: 'backup', Key: 'copy', CopySource: `photos/${encodeURIComponent('src/ä.bin')}` }))
    expect(copy.CopyObjectResult?.ETag).toBe(put.ETag)
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'backup', Key: 'copy' }))
    expect((await text(got.Body as Readable)).equals(body)).toBe(true)
    expect(got.Metadata).toEqual({ a: '1' })
    expect(got.ContentType).toBe('text/x-a')
    await h.client.send(new CopyObjectCommand({ Bucket: 'backup', Key: 'copy', CopySource: 'backup/copy', MetadataDirective: 'REPLACE', Metadata: { b: '2' }, ContentType: 'text/x-b' }))
    const head = await h.client.send(new HeadObjectCommand({ Bucket: 'backup', Key: 'copy' }))
    expect(head.Metadata).toEqual({ b: '2' })
    expect(head.ContentType).toBe('text/x-b')
    expect(head.ETag).toBe(put.ETag)
    expect((await failure(h.client.send(new CopyObjectCommand({ Bucket: 'backup', Key: 'copy', CopySource: 'backup/copy' })))).name).toBe('InvalidRequest')
    expect((await failure(h.client.send(new CopyObjectCommand({ Bucket: 'backup', Key: 'x', CopySource: 'photos/none' })))).name).toBe('NoSuchKey')
  })
})

describe('listings', () => {
  const keys = ['a/1', 'a/2', 'a/b/3', 'b', 'c d', 'c+d', 'c%d', 'c&d', 'é/ü', 'z']

  beforeEach(async () => {
    for (const Key of keys) await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key, Body: Key }))
  })

  it('list every key in UTF-8 order, page by page (v2 continuation tokens)', async () => {
    const seen: string[] = []
    let token: string | undefined
    let pages = 0
    do {
      const page = await h.client.send(new ListObjectsV2Command({ Bucket: 'photos', MaxKeys: 3, ContinuationToken: token }))
      seen.push(...(page.Contents ?? []).map((c) => c.Key!))
      token = page.NextContinuationToken
      pages++
      expect(page.KeyCount).toBe((page.Contents ?? []).length)
    } while (token !== undefined)
    expect(seen).toEqual([...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))))
    expect(pages).toBe(4)
  })

  it('roll keys up into common prefixes at the delimiter, v1 and v2', async () => {
    const v2 = await h.client.send(new ListObjectsV2Command({ Bucket: 'photos', Delimiter: '/' }))
    expect(v2.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['a/', 'é/'])
    expect(v2.Contents?.map((c) => c.Key)).toEqual(['b', 'c d', 'c%d', 'c&d', 'c+d', 'z'])
    const inner = await h.client.send(new ListObjectsV2Command({ Bucket: 'photos', Delimiter: '/', Prefix: 'a/' }))
    expect(inner.Contents?.map((c) => c.Key)).toEqual(['a/1', 'a/2'])
    expect(inner.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['a/b/'])
    // v1, two at a time: a prefix counts as one entry, and NextMarker resumes after it.
    const first = await h.client.send(new ListObjectsCommand({ Bucket: 'photos', Delimiter: '/', MaxKeys: 2 }))
    expect(first.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['a/'])
    expect(first.Contents?.map((c) => c.Key)).toEqual(['b'])
    expect(first.IsTruncated).toBe(true)
    const second = await h.client.send(new ListObjectsCommand({ Bucket: 'photos', Delimiter: '/', MaxKeys: 2, Marker: first.NextMarker }))
    expect(second.Contents?.map((c) => c.Key)).toEqual(['c d', 'c%d'])
  })

  it('start after a key and filter by prefix', async () => {
    const res = await h.client.send(new ListObjectsV2Command({ Bucket: 'photos', StartAfter: 'c%d', Prefix: 'c' }))
    expect(res.Contents?.map((c) => c.Key)).toEqual(['c&d', 'c+d'])
    expect(res.Contents?.[0]?.ETag).toBe(`"${md5(Buffer.from('c&d'))}"`)
    expect(res.Contents?.[0]?.Size).toBe(3)
  })

  it('URL-encode keys when asked (encoding-type=url)', async () => {
    const res = await send(h.port, 'GET', '/photos?list-type=2&encoding-type=url&prefix=c', await signHeaders(h.port, 'GET', '/photos', { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' }, { query: { 'list-type': '2', 'encoding-type': 'url', prefix: 'c' } }))
    expect(res.status).toBe(200)
    expect(res.body.toString()).toContain('<Key>c%20d</Key>')
    expect(res.body.toString()).toContain('<Key>c%2Bd</Key>')
    const sdk = await h.client.send(new ListObjectsV2Command({ Bucket: 'photos', Prefix: 'c', EncodingType: 'url' }))
    // The JavaScript SDK leaves the decoding to the application.
    expect(sdk.Contents?.map((c) => decodeURIComponent(c.Key!))).toEqual(['c d', 'c%d', 'c&d', 'c+d'])
  })
})

describe('presigned URLs and virtual-host style', () => {
  it('let a plain HTTP client PUT and GET through presigned URLs', async () => {
    const putUrl = await getSignedUrl(h.client, new PutObjectCommand({ Bucket: 'photos', Key: 'shared file.txt' }), { expiresIn: 600 })
    const put = await fetch(putUrl, { method: 'PUT', body: 'presigned body' })
    expect(put.status).toBe(200)
    const getUrl = await getSignedUrl(h.client, new GetObjectCommand({ Bucket: 'photos', Key: 'shared file.txt', ResponseContentType: 'text/plain' }), { expiresIn: 600 })
    const got = await fetch(getUrl)
    expect(got.status).toBe(200)
    expect(got.headers.get('content-type')).toBe('text/plain')
    expect(await got.text()).toBe('presigned body')
    // A changed URL fails.
    const tampered = await fetch(getUrl.replace('shared%20file.txt', 'other.txt'))
    expect(tampered.status).toBe(403)
    expect(errorCode(Buffer.from(await tampered.arrayBuffer()))).toBe('SignatureDoesNotMatch')
  })

  it('take the bucket from the Host under a virtual-host domain', async () => {
    await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'v.txt', Body: 'virtual' }))
    const port = h.port
    const { SignatureV4 } = await import('@smithy/signature-v4')
    const { Hash } = await import('@smithy/hash-node')
    const s = new SignatureV4({ credentials, region: 'us-east-1', service: 's3', sha256: Hash.bind(null, 'sha256'), uriEscapePath: false })
    const signed = await s.sign({ method: 'GET', protocol: 'http:', hostname: 'photos.s3.test', port, path: '/v.txt', query: {}, headers: { host: `photos.s3.test:${port}`, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } })
    const res = await send(port, 'GET', '/v.txt', signed.headers)
    expect(res.status).toBe(200)
    expect(res.body.toString()).toBe('virtual')
  })
})

describe('what the gateway does not do', () => {
  it('refuses Signature Version 2, in a header or a presigned URL, in the words clients look for to switch to Version 4', async () => {
    const expected = 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.'
    const header = await send(h.port, 'GET', '/photos', { authorization: 'AWS AKIDEXAMPLE:c2lnbmF0dXJl', date: new Date().toUTCString() })
    expect(header.status).toBe(400)
    expect(errorCode(header.body)).toBe('InvalidRequest')
    expect(header.body.toString()).toContain(`<Message>${expected}</Message>`)
    const presigned = await send(h.port, 'GET', `/photos/a.txt?AWSAccessKeyId=${credentials.accessKeyId}&Signature=c2lnbmF0dXJl&Expires=${Math.floor(Date.now() / 1000) + 600}`, {})
    expect(presigned.status).toBe(400)
    expect(presigned.body.toString()).toContain(`<Message>${expected}</Message>`)
  })

  it('names its region when a request is signed for another, as S3 does', async () => {
    const signed = await signHeaders(h.port, 'GET', '/', { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' })
    const authorization = signed.authorization!.replace('/us-east-1/', '/US/')
    const res = await send(h.port, 'GET', '/', { ...signed, authorization })
    expect(res.status).toBe(400)
    expect(errorCode(res.body)).toBe('AuthorizationHeaderMalformed')
    expect(res.body.toString()).toContain('<Region>us-east-1</Region>')
    // Only then: a client that retries in the named region would loop on any other malformation.
    const other = await send(h.port, 'GET', '/', { ...signed, authorization: signed.authorization!.replace(/SignedHeaders=[^,]*/, 'SignedHeaders=x-amz-date') })
    expect(errorCode(other.body)).toBe('AuthorizationHeaderMalformed')
    expect(other.body.toString()).not.toContain('<Region>')
  })

  it('refuses an ACL that would grant access to anyone but the owner, and stores nothing', async () => {
    await h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'private.txt', Body: 'mine', ACL: 'private' }))
    expect(await failure(h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'public.txt', Body: 'everyone', ACL: 'public-read' })))).toEqual({ name: 'NotImplemented', status: 501 })
    expect(await failure(h.client.send(new PutObjectCommand({ Bucket: 'photos', Key: 'granted.txt', Body: 'x', GrantRead: 'uri=http://acs.amazonaws.com/groups/global/AllUsers' })))).toEqual({ name: 'NotImplemented', status: 501 })
    expect(await failure(h.client.send(new CreateBucketCommand({ Bucket: 'open-bucket', ACL: 'public-read-write' })))).toEqual({ name: 'NotImplemented', status: 501 })
    const listed = await h.client.send(new ListObjectsV2Command({ Bucket: 'photos' }))
    expect((listed.Contents ?? []).map((o) => o.Key)).toEqual(['private.txt'])
    expect(await failure(h.client.send(new HeadBucketCommand({ Bucket: 'open-bucket' })))).toMatchObject({ status: 404 })
  })

  it('answers NotImplemented in S3 XML', async () => {
    const res = await send(h.port, 'GET', '/photos?versioning', await signHeaders(h.port, 'GET', '/photos', { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' }, { query: { versioning: '' } }))
    expect(res.status).toBe(501)
    expect(errorCode(res.body)).toBe('NotImplemented')
    expect(res.headers['content-type']).toBe('application/xml')
  })
})
