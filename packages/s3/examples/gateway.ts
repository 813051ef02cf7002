// A dcas node with an S3 gateway; the AWS SDK creates a bucket, stores, reads and lists through it.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { createServer } from '@dcas/server'
import { createS3Gateway, generateCredentials } from '@dcas/s3'

const dir = await mkdtemp(join(tmpdir(), 'dcas-s3-example-'))
const server = createServer({ root: dir, writeQuorum: 0 }) // alone: stores need no peer
await server.start()
const credentials = generateCredentials()
const gateway = createS3Gateway({ server, credentials })
const endpoint = await gateway.listen('127.0.0.1:0')

const s3 = new S3Client({ endpoint, region: 'us-east-1', credentials, forcePathStyle: true })
await s3.send(new CreateBucketCommand({ Bucket: 'notes' }))
const { ETag } = await s3.send(new PutObjectCommand({ Bucket: 'notes', Key: 'hello.txt', Body: 'hello, dcas', ContentType: 'text/plain' }))
console.log(`stored notes/hello.txt, ETag ${ETag}`)
const got = await s3.send(new GetObjectCommand({ Bucket: 'notes', Key: 'hello.txt' }))
console.log(`read back (${got.ContentType}): ${await got.Body?.transformToString()}`)
const { Contents } = await s3.send(new ListObjectsV2Command({ Bucket: 'notes' }))
console.log(`listed: ${Contents?.map((c) => `${c.Key} (${c.Size} bytes)`).join(', ')}`)
console.log(`dcas keys: ${(await server.list()).map((e) => e.key).join(', ')}`)

s3.destroy()
await gateway.close()
await server.close()
await rm(dir, { recursive: true, force: true })
