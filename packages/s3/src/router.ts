// Which S3 operation a request is: by method, bucket, key and sub-resource. What the gateway does
// not do answers `NotImplemented` (501); a method that fits nothing, `MethodNotAllowed`.
import type { S3Context } from './context.js'
import { S3Error } from './errors.js'
import { createBucket, deleteBucket, getBucketLocation, headBucket, listBuckets } from './ops/buckets.js'
import type { Deps } from './ops/common.js'
import { listObjects, listObjectsV2 } from './ops/list.js'
import { abortMultipartUpload, completeMultipartUpload, createMultipartUpload, listMultipartUploads, listParts, uploadPart, uploadPartCopy } from './ops/multipart.js'
import { copyObject, deleteObject, deleteObjects, getObject, putObject } from './ops/objects.js'

/** S3's sub-resources (query parameters naming a feature) that the gateway does not implement. */
const UNSUPPORTED = [
  'accelerate', 'acl', 'analytics', 'attributes', 'cors', 'encryption', 'intelligent-tiering', 'inventory', 'legal-hold',
  'lifecycle', 'logging', 'metadataConfiguration', 'metadataTable', 'metrics', 'notification', 'object-lock', 'ownershipControls',
  'policy', 'policyStatus', 'publicAccessBlock', 'replication', 'requestPayment', 'restore', 'retention', 'select', 'session',
  'tagging', 'torrent', 'versioning', 'versions', 'website', 'renameObject',
]

/** Runs the operation `ctx` asks for. `background` takes work that may outlive the answer (the gateway's close awaits it). */
export async function route(deps: Deps, ctx: S3Context, background: (work: Promise<unknown>) => void): Promise<void> {
  const unsupported = UNSUPPORTED.find((name) => ctx.has(name))
  if (unsupported !== undefined) throw new S3Error('NotImplemented', `The ${unsupported} sub-resource is not implemented by this gateway.`)
  const { method, bucket, key } = ctx
  if (method === 'OPTIONS') throw new S3Error('NotImplemented', 'CORS is not implemented by this gateway.')

  if (bucket === undefined) {
    if (method === 'GET') return listBuckets(deps, ctx)
    throw new S3Error('MethodNotAllowed', `The specified method ${method} is not allowed against the service.`)
  }

  if (key === undefined) {
    switch (method) {
      case 'GET':
        if (ctx.has('location')) return getBucketLocation(deps, ctx, bucket)
        if (ctx.has('uploads')) return listMultipartUploads(deps, ctx, bucket)
        if (ctx.param('list-type') === '2') return listObjectsV2(deps, ctx, bucket)
        return listObjects(deps, ctx, bucket)
      case 'HEAD':
        return headBucket(deps, ctx, bucket)
      case 'PUT':
        return createBucket(deps, ctx, bucket)
      case 'DELETE':
        return deleteBucket(deps, ctx, bucket)
      case 'POST':
        if (ctx.has('delete')) return deleteObjects(deps, ctx, bucket)
        throw new S3Error('NotImplemented', 'This POST on a bucket is not implemented by this gateway (only ?delete is).')
    }
    throw new S3Error('MethodNotAllowed', `The specified method ${method} is not allowed against a bucket.`)
  }

  switch (method) {
    case 'GET':
      if (ctx.has('uploadId')) return listParts(deps, ctx, bucket, key)
      return getObject(deps, ctx, bucket, key)
    case 'HEAD':
      return getObject(deps, ctx, bucket, key)
    case 'PUT':
      if (ctx.has('uploadId') || ctx.has('partNumber')) {
        return ctx.headers.has('x-amz-copy-source') ? uploadPartCopy(deps, ctx, bucket, key) : uploadPart(deps, ctx, bucket, key)
      }
      if (ctx.headers.has('x-amz-copy-source')) return copyObject(deps, ctx, bucket, key)
      return putObject(deps, ctx, bucket, key)
    case 'DELETE':
      if (ctx.has('uploadId')) return abortMultipartUpload(deps, ctx, bucket, key)
      return deleteObject(deps, ctx, bucket, key)
    case 'POST':
      if (ctx.has('uploads')) return createMultipartUpload(deps, ctx, bucket, key)
      if (ctx.has('uploadId')) return completeMultipartUpload(deps, ctx, bucket, key, background)
      throw new S3Error('NotImplemented', 'This POST on an object is not implemented by this gateway (POST object uploads are not).')
  }
  throw new S3Error('MethodNotAllowed', `The specified method ${method} is not allowed against an object.`)
}
