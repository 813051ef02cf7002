// The gateway over real dcas nodes: a copy and a completed multipart upload add a manifest and no
// chunk (no bytes copied); an object stored through S3 is replicated to the peer and healed from it.
import { randomBytes } from 'node:crypto'
import { readdir, rm, writeFile } from 'node:fs/promises'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { CompleteMultipartUploadCommand, CopyObjectCommand, CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3'
import { createServer, type Server } from '@dcas/server'
import { afterEach, describe, expect, it } from 'vitest'
import { startGateway, text, type Harness } from './helpers.js'

const MiB = 1024 * 1024
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function node(dir: string, name: string, bootstrap: string[] = []): Promise<Server> {
  // A node alone stores on itself only (the default waits for one placed peer).
  const server = createServer({ root: join(dir, name), clusterSecret: 'the s3 tests share this secret', bootstrap, writeQuorum: bootstrap.length === 0 ? 0 : 1 })
  await server.start()
  cleanups.push(() => server.close())
  return server
}

async function gatewayOver(server: Server): Promise<Harness> {
  const h = await startGateway(server)
  cleanups.push(async () => {
    h.client.destroy()
    await h.gateway.close()
  })
  await h.client.send(new CreateBucketCommand({ Bucket: 'bkt' }))
  return h
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dcas-s3-cluster-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** The blob files of a node's own store. */
async function blobs(root: string): Promise<string[]> {
  const entries = await readdir(join(root, 'blobs'), { recursive: true, withFileTypes: true })
  return entries.filter((e) => e.isFile()).map((e) => e.name)
}

describe('no bytes copied', () => {
  it('a copy adds one manifest and no chunk', async () => {
    const dir = await tempDir()
    const h = await gatewayOver(await node(dir, 'a'))
    const body = randomBytes(3 * MiB + 10)
    await h.client.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'original', Body: body }))
    const before = new Set(await blobs(join(dir, 'a')))
    await h.client.send(new CopyObjectCommand({ Bucket: 'bkt', Key: 'copy', CopySource: 'bkt/original', MetadataDirective: 'REPLACE', ContentType: 'text/x-new' }))
    const added = (await blobs(join(dir, 'a'))).filter((f) => !before.has(f))
    expect(added.length).toBe(1) // the copy's manifest
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'copy' }))
    expect((await text(got.Body as Readable)).equals(body)).toBe(true)
  })

  it('a completed multipart upload adds one manifest and keeps the parts\' chunks only', async () => {
    const dir = await tempDir()
    const h = await gatewayOver(await node(dir, 'a'))
    const parts = [randomBytes(5 * MiB + 100), randomBytes(2 * MiB)]
    const { UploadId } = await h.client.send(new CreateMultipartUploadCommand({ Bucket: 'bkt', Key: 'mp' }))
    const etags: string[] = []
    for (const [i, Body] of parts.entries()) etags.push((await h.client.send(new UploadPartCommand({ Bucket: 'bkt', Key: 'mp', UploadId, PartNumber: i + 1, Body }))).ETag!)
    const before = new Set(await blobs(join(dir, 'a')))
    await h.client.send(new CompleteMultipartUploadCommand({ Bucket: 'bkt', Key: 'mp', UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }))
    await h.gateway.close() // the parts' removal has finished
    const after = await blobs(join(dir, 'a'))
    expect(after.filter((f) => !before.has(f)).length).toBe(1) // the object's manifest
    // 6 + 2 chunks of the parts, the object's manifest, the bucket's: the parts' manifests and the upload record are gone.
    expect(after.length).toBe(8 + 2)
    const server = h.server as Server
    const got = server.read('bkt/mp')
    expect((await text(got)).equals(Buffer.concat(parts))).toBe(true)
  })
})

describe('replicated and healed', () => {
  it('an object stored through S3 is held by the peer and healed from it when lost here', async () => {
    const dir = await tempDir()
    const a = await node(dir, 'a')
    const b = await node(dir, 'b', [a.address])
    await b.waitForPeers(1)
    const h = await gatewayOver(b)
    const body = randomBytes(2 * MiB + 1)
    await h.client.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'precious', Body: body }))
    expect((await b.stat('bkt/precious')).replicas).toEqual([a.nodeId])
    // Damage every chunk of b's own store: the read is healed from a.
    for (const entry of await readdir(join(dir, 'b', 'blobs'), { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) await writeFile(join(entry.parentPath, entry.name), 'damaged')
    }
    const got = await h.client.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'precious' }))
    expect((await text(got.Body as Readable)).equals(body)).toBe(true)
  })
})

describe('a write quorum not reached', () => {
  it('answers 503 saying that nothing was stored when no peer could be reached, and stores nothing', async () => {
    const dir = await tempDir()
    const b = await node(dir, 'b')
    const a = await node(dir, 'a', [b.address])
    await a.waitForPeers(1)
    const h = await gatewayOver(a)
    await b.close()
    const err = await h.client.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'k', Body: 'not stored' })).then(
      () => undefined,
      (e: { name?: string; message?: string; $metadata?: { httpStatusCode?: number } }) => e,
    )
    expect(err).toMatchObject({ name: 'ServiceUnavailable', $metadata: { httpStatusCode: 503 } })
    expect(err?.message).toMatch(/^Nothing was stored: too few peers could be reached/)
    const listed = await h.client.send(new ListObjectsV2Command({ Bucket: 'bkt' }))
    expect(listed.KeyCount).toBe(0)
  })
})
