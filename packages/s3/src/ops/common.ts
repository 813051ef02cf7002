// What every operation shares: the gateway's settings and server, the bucket check, and the
// mapping of a dcas server's errors onto S3's.
import type { Logger } from '@dcas/server'
import type { S3Context } from '../context.js'
import { S3Error, codeOf, messageOf, s3ErrorIn, type S3ErrorCode } from '../errors.js'
import { bucketRecordKey } from '../layout.js'
import type { GatewayObject, GatewayOpenObject, GatewayServer } from '../store-api.js'

/** The settings and services each operation runs with. */
export interface Deps {
  server: GatewayServer
  region: string
  /** Owner id shown in listings. */
  ownerId: string
  /** Smallest part of a multipart upload (but the last). */
  minPartSize: number
  /** Largest object in one PUT, and largest part. */
  maxPutSize: number
  /** Most incomplete multipart uploads per bucket. */
  maxUploads: number
  log: Logger
}

/** Throws `NoSuchBucket` unless `bucket` exists. */
export async function requireBucket(deps: Deps, bucket: string): Promise<void> {
  if (!(await deps.server.has(bucketRecordKey(bucket)))) throw new S3Error('NoSuchBucket', `The specified bucket "${bucket}" does not exist.`)
}

const STATUS_CODES: Record<string, S3ErrorCode> = {
  ERR_PRECONDITION: 'PreconditionFailed',
  ERR_QUORUM: 'ServiceUnavailable',
  ERR_UNAVAILABLE: 'ServiceUnavailable',
  ERR_CLOSED: 'ServiceUnavailable',
  ERR_ABORTED: 'IncompleteBody',
  ERR_INVALID_KEY: 'KeyTooLongError',
}

const noSuchKey = (): S3Error => new S3Error('NoSuchKey', 'The specified key does not exist.')

/**
 * The {@link S3Error} for anything an operation threw: an S3Error (maybe thrown by a data source
 * and wrapped by the server) as it is, a server error by its code (`notFound` for ERR_NOT_FOUND),
 * anything else `InternalError`.
 */
export function toS3Error(err: unknown, notFound: () => S3Error = noSuchKey): S3Error {
  const s3 = s3ErrorIn(err)
  if (s3 !== undefined) return s3
  const code = codeOf(err)
  if (code === 'ERR_NOT_FOUND') return notFound()
  if (code === 'ERR_QUORUM') {
    // The server says whether the object was committed here (and is repaired in the background) or nothing was stored.
    const committed = (err as { details?: { committed?: unknown } }).details?.committed
    const what =
      committed === true
        ? 'The object was stored on this node, but fewer peers than the write quorum acknowledged it'
        : committed === false
          ? 'Nothing was stored: too few peers could be reached for the write quorum'
          : 'Fewer peers than the write quorum acknowledged the object'
    return new S3Error('ServiceUnavailable', `${what}: ${messageOf(err)}. Retry when the peers are back.`, { cause: err })
  }
  if (code === 'ERR_PRECONDITION') return new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold.', { cause: err })
  if (code === 'ERR_TOO_LARGE') return new S3Error('EntityTooLarge', `Your object is larger than this node can hold in one object: ${messageOf(err)}`, { cause: err })
  const mapped = code === undefined ? undefined : STATUS_CODES[code]
  if (mapped !== undefined) return new S3Error(mapped, messageOf(err), { cause: err })
  return new S3Error('InternalError', 'We encountered an internal error. Please try again.', { cause: err })
}

/**
 * {@link toS3Error} for a store or compose. Its one option a client shapes is the metadata (the gateway
 * makes the data, keys and sources itself), so the server's ERR_INVALID_OPTIONS there is metadata it
 * refused: S3's `MetadataTooLarge`, as the gateway checks names and form before (see `metadata.ts`).
 */
export function toS3WriteError(err: unknown): S3Error {
  if (s3ErrorIn(err) === undefined && codeOf(err) === 'ERR_INVALID_OPTIONS') {
    return new S3Error('MetadataTooLarge', `Your metadata is larger than a dcas object keeps: ${messageOf(err)}`, { cause: err })
  }
  return toS3Error(err)
}

/**
 * Opens the current version of `dcasKey`, whose stat and reads then agree whatever happens to the key;
 * the caller closes it. A key this node does not hold is `notFound()` at once, as `stat` answers: a
 * probe for a missing key (clients send many) does not ask the peers.
 */
export async function openObject(deps: Deps, dcasKey: string, signal: AbortSignal, notFound: () => S3Error = noSuchKey): Promise<GatewayOpenObject> {
  if (!(await deps.server.has(dcasKey))) throw notFound()
  try {
    return await deps.server.open(dcasKey, { signal })
  } catch (err) {
    throw toS3Error(err, notFound)
  }
}

/** The current version's stat of `dcasKey`, or `notFound()`. */
export async function statObject(deps: Deps, dcasKey: string, notFound: () => S3Error = noSuchKey): Promise<GatewayObject> {
  try {
    return await deps.server.stat(dcasKey)
  } catch (err) {
    throw toS3Error(err, notFound)
  }
}

/** `Wed, 12 Oct 2009 17:50:00 GMT`. */
export const httpDate = (ms: number): string => new Date(ms).toUTCString()
/** `2009-10-12T17:50:30.000Z`. */
export const isoDate = (ms: number): string => new Date(ms).toISOString()

/** An HTTP date header's milliseconds, or `undefined` when it does not parse. */
export function parseHttpDate(text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const ms = Date.parse(text)
  return Number.isNaN(ms) ? undefined : ms
}

/** Runs `fn` over `items`, `limit` at a time, in order of start. */
export async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

/** Whether an ETag condition (`"a", "b"`, `*`) matches `etag` (quoted). */
export function etagMatches(condition: string, etag: string): boolean {
  const bare = etag.replace(/^"|"$/g, '')
  return condition.split(',').some((c) => {
    const t = c.trim().replace(/^W\//, '').replace(/^"|"$/g, '')
    return t === '*' || t === bare
  })
}

/** Canned ACLs that say what the gateway does anyway: one owner, nothing public. */
const OWNER_ONLY_ACLS = new Set(['private', 'bucket-owner-read', 'bucket-owner-full-control'])

/** Refuses ACLs that would grant anyone but the owner access (the gateway has no ACLs: it would not apply them). */
export function refuseAcl(ctx: S3Context): void {
  const acl = ctx.header('x-amz-acl')
  if (acl !== undefined && !OWNER_ONLY_ACLS.has(acl.trim())) throw new S3Error('NotImplemented', `The canned ACL ${acl.slice(0, 40)} is not supported: objects are only ever the owner's (private is accepted).`)
  const grant = [...ctx.headers.keys()].find((name) => name.startsWith('x-amz-grant-'))
  if (grant !== undefined) throw new S3Error('NotImplemented', `The ${grant} header is not supported: objects are only ever the owner's.`)
}
