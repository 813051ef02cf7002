// Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation.
// A bucket is the record `.s3/buckets/<name>`; its objects are the keys under `<name>/`.
import type { S3Context } from '../context.js'
import { S3Error, codeOf } from '../errors.js'
import { BUCKETS_PREFIX, bucketRecordKey, checkBucketName, objectPrefix } from '../layout.js'
import { verifiedPayload } from '../payload.js'
import { S3_NAMESPACE, childText, el, parseXml } from '../xml.js'
import { isoDate, refuseAcl, requireBucket, toS3Error, type Deps } from './common.js'
import { abortUploadsOf } from './multipart.js'

const empty = (async function* (): AsyncGenerator<Uint8Array> {})

export async function listBuckets(deps: Deps, ctx: S3Context): Promise<void> {
  const buckets: Array<{ name: string; created: number }> = []
  let after: string | undefined
  for (;;) {
    const page = await deps.server.list({ prefix: BUCKETS_PREFIX, limit: 1000, ...(after === undefined ? {} : { after }) })
    for (const entry of page) {
      const created = Date.parse(entry.metadata.created ?? '')
      buckets.push({ name: entry.key.slice(BUCKETS_PREFIX.length), created: Number.isNaN(created) ? entry.updatedAt : created })
    }
    if (page.length < 1000) break
    after = page.at(-1)!.key
  }
  ctx.sendXml(
    200,
    el(
      'ListAllMyBucketsResult',
      [
        el('Owner', [el('ID', deps.ownerId), el('DisplayName', 'dcas')]),
        el(
          'Buckets',
          buckets.map((b) => el('Bucket', [el('Name', b.name), el('CreationDate', isoDate(b.created))])),
        ),
      ],
      { xmlns: S3_NAMESPACE },
    ),
  )
}

export async function createBucket(deps: Deps, ctx: S3Context, bucket: string): Promise<void> {
  checkBucketName(bucket)
  refuseAcl(ctx)
  // An optional <CreateBucketConfiguration><LocationConstraint>: it must name this gateway's region.
  const config = await parseXml(verifiedPayload(ctx).data, { maxBytes: 64 * 1024 })
  if (config !== undefined) {
    if (config.name !== 'CreateBucketConfiguration') throw new S3Error('MalformedXML', `The XML you provided was not well-formed or did not validate against our published schema: expected <CreateBucketConfiguration>, got <${config.name}>`)
    const location = childText(config, 'LocationConstraint')
    if (location !== undefined && location !== '' && location !== deps.region) {
      throw new S3Error('InvalidArgument', `The specified location-constraint "${location.slice(0, 64)}" is not valid: this gateway's region is "${deps.region}".`)
    }
  }
  try {
    await deps.server.store(bucketRecordKey(bucket), empty(), {
      metadata: { created: new Date().toISOString(), region: deps.region },
      precondition: (current) => current === undefined,
      signal: ctx.signal,
    })
  } catch (err) {
    if (codeOf(err) === 'ERR_PRECONDITION') throw new S3Error('BucketAlreadyOwnedByYou', 'Your previous request to create the named bucket succeeded and you already own it.', { cause: err })
    throw toS3Error(err)
  }
  deps.log.info({ bucket }, 's3: bucket created')
  ctx.sendEmpty(200, { location: `/${bucket}` })
}

export async function headBucket(deps: Deps, ctx: S3Context, bucket: string): Promise<void> {
  await requireBucket(deps, bucket)
  ctx.sendEmpty(200, { 'x-amz-bucket-region': deps.region })
}

export async function deleteBucket(deps: Deps, ctx: S3Context, bucket: string): Promise<void> {
  await requireBucket(deps, bucket)
  const objects = await deps.server.list({ prefix: objectPrefix(bucket), limit: 1 })
  if (objects.length > 0) throw new S3Error('BucketNotEmpty', 'The bucket you tried to delete is not empty.')
  await abortUploadsOf(deps, bucket, () => true)
  try {
    await deps.server.delete(bucketRecordKey(bucket), { signal: ctx.signal })
  } catch (err) {
    throw toS3Error(err, () => new S3Error('NoSuchBucket', `The specified bucket "${bucket}" does not exist.`))
  }
  deps.log.info({ bucket }, 's3: bucket deleted')
  ctx.sendEmpty(204)
}

export async function getBucketLocation(deps: Deps, ctx: S3Context, bucket: string): Promise<void> {
  await requireBucket(deps, bucket)
  // us-east-1 is written as an empty constraint, as S3 does.
  ctx.sendXml(200, el('LocationConstraint', deps.region === 'us-east-1' ? undefined : deps.region, { xmlns: S3_NAMESPACE }))
}
