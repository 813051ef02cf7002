// Where S3's buckets, objects and multipart uploads live among a dcas node's keys:
//
//   <bucket>/<key>                         an object (what `dcas ls <bucket>/` shows)
//   .s3/buckets/<bucket>                   a bucket's record (empty; created-at and region in its metadata)
//   .s3/uploads/<bucket>/<uploadId>        an incomplete multipart upload (the object's key and metadata in its metadata)
//   .s3/parts/<bucket>/<uploadId>/<00001>  a part of it
//
// Bucket names never start with a dot, so `.s3/` cannot collide with an object. dcas keys hold at
// most 1024 bytes of UTF-8, so an object key may have 1024 − (bucket name + 1) bytes.
import { randomBytes } from 'node:crypto'
import { S3Error } from './errors.js'

/** Most bytes of UTF-8 in a dcas key. */
export const MAX_DCAS_KEY_BYTES = 1024
/** Highest part number S3 allows. */
export const MAX_PART_NUMBER = 10_000
/** Every key the gateway keeps for itself starts with this. */
export const RESERVED_PREFIX = '.s3/'
export const BUCKETS_PREFIX = '.s3/buckets/'
export const UPLOADS_PREFIX = '.s3/uploads/'
export const PARTS_PREFIX = '.s3/parts/'
/** Sorts after every character a key can hold (UTF-8 order): `after: P + LAST_CHAR` skips every key starting with P. */
export const LAST_CHAR = '\u{10FFFF}'

export const bucketRecordKey = (bucket: string): string => `${BUCKETS_PREFIX}${bucket}`
export const objectPrefix = (bucket: string): string => `${bucket}/`
export const objectKey = (bucket: string, key: string): string => `${bucket}/${key}`
export const uploadsPrefix = (bucket: string): string => `${UPLOADS_PREFIX}${bucket}/`
export const uploadKey = (bucket: string, uploadId: string): string => `${UPLOADS_PREFIX}${bucket}/${uploadId}`
export const partsPrefix = (bucket: string, uploadId: string): string => `${PARTS_PREFIX}${bucket}/${uploadId}/`
export const partKey = (bucket: string, uploadId: string, partNumber: number): string => `${partsPrefix(bucket, uploadId)}${String(partNumber).padStart(5, '0')}`

/** Throws `InvalidBucketName` unless `name` follows S3's rules for bucket names. */
export function checkBucketName(name: string): void {
  const fail = (why: string): never => {
    throw new S3Error('InvalidBucketName', `The specified bucket is not valid: "${name.slice(0, 80)}" ${why}.`)
  }
  if (name.length < 3 || name.length > 63) fail('must be 3 to 63 characters long')
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(name)) fail('may hold only lowercase letters, digits, dots and hyphens, and must begin and end with a letter or digit')
  if (name.includes('..')) fail('must not hold two dots in a row')
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) fail('must not look like an IP address')
  if (/^(xn--|sthree-|amzn-s3-demo-)/.test(name) || /(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$/.test(name)) fail('uses a prefix or suffix S3 reserves')
}

/** Throws unless `key` can be an object of `bucket`: not empty, no NUL, and short enough for a dcas key. */
export function checkObjectKey(bucket: string, key: string): void {
  if (key === '') throw new S3Error('InvalidArgument', 'An object key must not be empty.')
  if (key.includes('\0')) throw new S3Error('InvalidArgument', 'An object key must not hold a NUL character.')
  const max = MAX_DCAS_KEY_BYTES - Buffer.byteLength(objectPrefix(bucket))
  if (Buffer.byteLength(key) > max) throw new S3Error('KeyTooLongError', `Your key is too long: in bucket "${bucket}" a key may have at most ${max} bytes of UTF-8 (dcas keys hold 1024, the bucket name and a slash included).`)
}

/** A new upload id: 12 hex digits of milliseconds (so ids sort by age), then 20 random hex digits. */
export function newUploadId(now = Date.now()): string {
  return `${now.toString(16).padStart(12, '0')}${randomBytes(10).toString('hex')}`
}

/** Whether `text` is an upload id {@link newUploadId} could have made. */
export const isUploadId = (text: string): boolean => /^[0-9a-f]{32}$/.test(text)
