/**
 * @packageDocumentation
 *
 * An S3-compatible gateway over a dcas server: restic, rclone, the AWS CLI, s3cmd and the AWS SDKs
 * store encrypted, replicated objects in dcas unchanged. Signature V4 in every form clients use
 * (signed, unsigned, streamed signed chunks, streamed with checksum trailers, presigned URLs),
 * verified in constant time while the body streams; buckets, objects, listings, copies and
 * multipart uploads, whose parts' chunks become the object's without a byte copied.
 *
 * @example
 * ```ts
 * import { createServer } from '@dcas/server'
 * import { createS3Gateway, generateCredentials } from '@dcas/s3'
 *
 * const server = createServer({ root: './data' })
 * await server.start()
 * const credentials = generateCredentials()
 * const gateway = createS3Gateway({ server, credentials })
 * const url = await gateway.listen('127.0.0.1:9000')
 * // restic -r s3:http://127.0.0.1:9000/backups init   (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from credentials)
 * await gateway.close()
 * await server.close()
 * ```
 */

export { createS3Gateway, generateCredentials } from './gateway.js'
export type { S3Gateway, S3GatewayOptions } from './gateway.js'
export type { CleanupResult } from './ops/multipart.js'
export type { S3Credentials } from './sigv4.js'
export type { GatewayObject, GatewayOpenObject, GatewayReadOptions, GatewayServer, GatewayStoreOptions, GatewayStoreResult, ObjectMetadata } from './store-api.js'
export { crc32, crc32c } from './checksum.js'
export { InvalidOptionsError, S3Error, S3_ERRORS, S3_ERROR_CODES } from './errors.js'
export type { S3ErrorCode } from './errors.js'
export { BUCKETS_PREFIX, PARTS_PREFIX, RESERVED_PREFIX, UPLOADS_PREFIX } from './layout.js'
