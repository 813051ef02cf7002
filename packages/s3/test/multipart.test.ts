// Multipart uploads through @aws-sdk/lib-storage and by hand: the object is its parts in order, its
// ETag the MD5 of the parts' MD5s; wrong parts, order or sizes are refused; aborted and stale
// uploads leave nothing.
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3ServiceException,
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startGateway, text, type Harness } from './helpers.js'
import { makeServer } from './server.js'

const MiB = 1024 * 1024
let h: Harness
let closeServer: () => Promise<void>

beforeEach(async () => {
  const { server, close } = await makeServer()
  closeServer = close
  h = await startGateway(server)
  await h.client.send(new CreateBucketCommand({ Bucket: 'big' }))
})

afterEach(async () => {
  h.client.destroy()
  await h.gateway.close()
  await closeServer()
})

const md5 = (b: Buffer): Buffer => createHash('md5').update(b).digest()
const failure = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p
  } catch (err) {
    return (err as S3ServiceException).name
  }
  throw new Error('expected a failure')
}
/** The gateway's own keys (parts and upload records) left in the server. */
const leftovers = async (): Promise<string[]> => (await h.server.list({ prefix: '.s3/', limit: 1000 })).map((e) => e.key).filter((k) => !k.startsWith('.s3/buckets/'))

describe('multipart uploads', () => {
  it('assemble an object from lib-storage parts, with the multipart ETag, and clean up', async () => {
    const body = randomBytes(12 * MiB + 123)
    const upload = new Upload({ client: h.client, params: { Bucket: 'big', Key: 'backup.tar', Body: Readable.from([body]), ContentType: 'application/x-tar', Metadata: { origin: 'test' } }, partSize: 5 * MiB, queueSize: 2 })
    const done = await upload.done()
    const parts = [body.subarray(0, 5 * MiB), body.subarray(5 * MiB, 10 * MiB), body.subarray(10 * MiB)]
    const expected = `"${createHash('md5').update(Buffer.concat(parts.map(md5))).digest('hex')}-3"`
    expect(done.ETag).toBe(expected)
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'big', Key: 'backup.tar' }))
    expect(got.ETag).toBe(expected)
    expect(got.ContentType).toBe('application/x-tar')
    expect(got.Metadata).toEqual({ origin: 'test' })
    expect((await text(got.Body as Readable)).equals(body)).toBe(true)
    const ranged = await h.client.send(new GetObjectCommand({ Bucket: 'big', Key: 'backup.tar', Range: `bytes=${5 * MiB - 10}-${5 * MiB + 9}` }))
    expect((await text(ranged.Body as Readable)).equals(body.subarray(5 * MiB - 10, 5 * MiB + 10))).toBe(true)
    expect((await h.client.send(new ListMultipartUploadsCommand({ Bucket: 'big' }))).Uploads ?? []).toEqual([])
    await h.gateway.close() // waits for the parts' removal in the background
    expect(await leftovers()).toEqual([])
  })

  it('list parts and uploads, copy a part from a range of another object, and refuse wrong parts', async () => {
    const source = randomBytes(7 * MiB)
    await h.client.send(new PutObjectCommand({ Bucket: 'big', Key: 'source', Body: source }))
    const { UploadId } = await h.client.send(new CreateMultipartUploadCommand({ Bucket: 'big', Key: 'dir/assembled' }))
    const part1 = randomBytes(5 * MiB)
    const p1 = await h.client.send(new UploadPartCommand({ Bucket: 'big', Key: 'dir/assembled', UploadId, PartNumber: 1, Body: part1 }))
    const p2 = await h.client.send(new UploadPartCopyCommand({ Bucket: 'big', Key: 'dir/assembled', UploadId, PartNumber: 2, CopySource: 'big/source', CopySourceRange: 'bytes=1000-2000999' }))
    expect(p2.CopyPartResult?.ETag).toBe(`"${md5(source.subarray(1000, 2001000)).toString('hex')}"`)
    const listed = await h.client.send(new ListPartsCommand({ Bucket: 'big', Key: 'dir/assembled', UploadId }))
    expect(listed.Parts?.map((p) => [p.PartNumber, p.Size])).toEqual([[1, 5 * MiB], [2, 2 * 1000 * 1000]])
    const uploads = await h.client.send(new ListMultipartUploadsCommand({ Bucket: 'big', Prefix: 'dir/' }))
    expect(uploads.Uploads?.map((u) => [u.Key, u.UploadId])).toEqual([['dir/assembled', UploadId]])
    const rolled = await h.client.send(new ListMultipartUploadsCommand({ Bucket: 'big', Delimiter: '/' }))
    expect(rolled.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['dir/'])

    const complete = (Parts: Array<{ PartNumber: number; ETag: string | undefined }>) => h.client.send(new CompleteMultipartUploadCommand({ Bucket: 'big', Key: 'dir/assembled', UploadId, MultipartUpload: { Parts } }))
    expect(await failure(complete([{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 2, ETag: '"00000000000000000000000000000000"' }]))).toBe('InvalidPart')
    expect(await failure(complete([{ PartNumber: 2, ETag: p2.CopyPartResult?.ETag }, { PartNumber: 1, ETag: p1.ETag }]))).toBe('InvalidPartOrder')
    expect(await failure(complete([{ PartNumber: 2, ETag: p2.CopyPartResult?.ETag }, { PartNumber: 3, ETag: p1.ETag }]))).toBe('InvalidPart')
    // Part 2 (2 MB) may not come before another part.
    const p3 = await h.client.send(new UploadPartCommand({ Bucket: 'big', Key: 'dir/assembled', UploadId, PartNumber: 3, Body: 'end' }))
    expect(await failure(complete([{ PartNumber: 2, ETag: p2.CopyPartResult?.ETag }, { PartNumber: 3, ETag: p3.ETag }]))).toBe('EntityTooSmall')
    await complete([{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 2, ETag: p2.CopyPartResult?.ETag }])
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'big', Key: 'dir/assembled' }))
    expect((await text(got.Body as Readable)).equals(Buffer.concat([part1, source.subarray(1000, 2001000)]))).toBe(true)
    // The upload is gone: its unused part 3 with it.
    expect(await failure(h.client.send(new ListPartsCommand({ Bucket: 'big', Key: 'dir/assembled', UploadId })))).toBe('NoSuchUpload')
    await h.gateway.close()
    expect(await leftovers()).toEqual([])
  })

  it('complete under If-None-Match: * only when there is no object', async () => {
    await h.client.send(new PutObjectCommand({ Bucket: 'big', Key: 'taken', Body: 'first' }))
    const { UploadId } = await h.client.send(new CreateMultipartUploadCommand({ Bucket: 'big', Key: 'taken' }))
    const p1 = await h.client.send(new UploadPartCommand({ Bucket: 'big', Key: 'taken', UploadId, PartNumber: 1, Body: 'second' }))
    expect(await failure(h.client.send(new CompleteMultipartUploadCommand({ Bucket: 'big', Key: 'taken', UploadId, IfNoneMatch: '*', MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }] } })))).toBe('PreconditionFailed')
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'big', Key: 'taken' }))
    expect((await text(got.Body as Readable)).toString()).toBe('first')
  })

  it('abort: the upload and its parts go, and no part is taken any more', async () => {
    const { UploadId } = await h.client.send(new CreateMultipartUploadCommand({ Bucket: 'big', Key: 'aborted' }))
    await h.client.send(new UploadPartCommand({ Bucket: 'big', Key: 'aborted', UploadId, PartNumber: 1, Body: randomBytes(1000) }))
    await h.client.send(new AbortMultipartUploadCommand({ Bucket: 'big', Key: 'aborted', UploadId }))
    expect(await failure(h.client.send(new UploadPartCommand({ Bucket: 'big', Key: 'aborted', UploadId, PartNumber: 2, Body: 'x' })))).toBe('NoSuchUpload')
    expect(await failure(h.client.send(new UploadPartCommand({ Bucket: 'big', Key: 'other-key', UploadId, PartNumber: 2, Body: 'x' })))).toBe('NoSuchUpload')
    expect(await failure(h.client.send(new HeadObjectCommand({ Bucket: 'big', Key: 'aborted' })))).toBe('NotFound')
    expect(await leftovers()).toEqual([])
  })

  it('are removed by the cleaner once older than the age limit, with their parts', async () => {
    const { UploadId } = await h.client.send(new CreateMultipartUploadCommand({ Bucket: 'big', Key: 'stale' }))
    await h.client.send(new UploadPartCommand({ Bucket: 'big', Key: 'stale', UploadId, PartNumber: 1, Body: randomBytes(1000) }))
    expect(await h.gateway.cleanup({ olderThan: Date.now() - 3600_000 })).toEqual({ uploads: 0, orphanParts: 0 })
    expect((await leftovers()).length).toBe(2)
    expect(await h.gateway.cleanup({ olderThan: Date.now() + 1 })).toEqual({ uploads: 1, orphanParts: 0 })
    expect(await leftovers()).toEqual([])
  })
})
