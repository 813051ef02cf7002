// ListObjects (v1) and ListObjectsV2: the keys under `<bucket>/<prefix>` in UTF-8 order, rolled up
// into common prefixes at the delimiter, paged by marker / start-after / continuation token. A
// rolled-up prefix is skipped whole in the index (one step), not key by key.
import type { S3Context } from '../context.js'
import { S3Error } from '../errors.js'
import { LAST_CHAR, objectPrefix } from '../layout.js'
import { etagOf } from '../metadata.js'
import { uriEncode } from '../sigv4.js'
import type { GatewayObject } from '../store-api.js'
import { S3_NAMESPACE, el, type Xml } from '../xml.js'
import { isoDate, requireBucket, type Deps } from './common.js'

/** Most keys in one page, as S3. */
const MAX_KEYS = 1000

/** One page of a listing. */
export interface ListPage {
  objects: GatewayObject[]
  /** Object keys relative to the bucket, for `objects`. */
  keys: string[]
  prefixes: string[]
  truncated: boolean
  /** Where the next page starts: a key or prefix after which to go on (relative to the bucket). */
  next: string | undefined
}

/**
 * Lists up to `maxKeys` objects and common prefixes of `bucket` under `prefix`, after `cursor`
 * (relative key; a value ending in {@link LAST_CHAR} skips a prefix).
 */
export async function listPage(deps: Deps, bucket: string, prefix: string, delimiter: string, cursor: string | undefined, maxKeys: number): Promise<ListPage> {
  const base = objectPrefix(bucket)
  const page: ListPage = { objects: [], keys: [], prefixes: [], truncated: false, next: undefined }
  let after = cursor
  // A marker that is itself a rolled-up prefix resumes after everything under it.
  if (delimiter !== '' && after !== undefined && after.startsWith(prefix) && after.endsWith(delimiter) && after.indexOf(delimiter, prefix.length) === after.length - delimiter.length) after += LAST_CHAR
  let count = 0
  if (maxKeys === 0) return page
  while (count < maxKeys) {
    const want = Math.min(MAX_KEYS, maxKeys - count) + 1
    const entries = await deps.server.list({ prefix: base + prefix, limit: want, ...(after === undefined ? {} : { after: base + after }) })
    if (entries.length === 0) return page
    let skipped = false
    for (const entry of entries) {
      const key = entry.key.slice(base.length)
      if (count >= maxKeys) {
        page.truncated = true
        return page
      }
      const at = delimiter === '' ? -1 : key.indexOf(delimiter, prefix.length)
      if (at >= 0) {
        const common = key.slice(0, at + delimiter.length)
        page.prefixes.push(common)
        page.next = common
        count++
        // Everything else under this prefix rolls up into it: list again past it.
        after = common + LAST_CHAR
        skipped = true
        break
      }
      page.objects.push(entry)
      page.keys.push(key)
      page.next = key
      after = key
      count++
    }
    if (!skipped && entries.length < want) return page
  }
  // maxKeys reached exactly: truncated only if anything comes after.
  const more = await deps.server.list({ prefix: base + prefix, limit: 1, ...(after === undefined ? {} : { after: base + after }) })
  page.truncated = more.length > 0
  return page
}

function maxKeysOf(ctx: S3Context): number {
  const text = ctx.param('max-keys')
  if (text === undefined) return MAX_KEYS
  if (!/^\d{1,9}$/.test(text)) throw new S3Error('InvalidArgument', 'Provided max-keys not an integer or within integer range')
  return Math.min(Number(text), MAX_KEYS)
}

function encodingOf(ctx: S3Context): (text: string) => string {
  const type = ctx.param('encoding-type')
  if (type === undefined) return (t) => t
  if (type !== 'url') throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request: only url is supported')
  return (t) => uriEncode(t, true)
}

const owner = (deps: Deps): Xml => el('Owner', [el('ID', deps.ownerId), el('DisplayName', 'dcas')])

function contents(deps: Deps, page: ListPage, encode: (t: string) => string, withOwner: boolean): Xml[] {
  return page.objects.map((o, i) =>
    el('Contents', [
      el('Key', encode(page.keys[i]!)),
      el('LastModified', isoDate(o.updatedAt)),
      el('ETag', etagOf(o)),
      el('Size', o.size),
      withOwner ? owner(deps) : undefined,
      el('StorageClass', 'STANDARD'),
    ]),
  )
}

export async function listObjects(deps: Deps, ctx: S3Context, bucket: string): Promise<void> {
  await requireBucket(deps, bucket)
  const prefix = ctx.param('prefix') ?? ''
  const delimiter = ctx.param('delimiter') ?? ''
  const marker = ctx.param('marker') ?? ''
  const maxKeys = maxKeysOf(ctx)
  const encode = encodingOf(ctx)
  const page = await listPage(deps, bucket, prefix, delimiter, marker === '' ? undefined : marker, maxKeys)
  ctx.sendXml(
    200,
    el(
      'ListBucketResult',
      [
        el('Name', bucket),
        el('Prefix', encode(prefix)),
        el('Marker', encode(marker)),
        // S3 gives NextMarker only with a delimiter; clients take the last key otherwise.
        page.truncated && delimiter !== '' && page.next !== undefined ? el('NextMarker', encode(page.next)) : undefined,
        el('MaxKeys', maxKeys),
        delimiter === '' ? undefined : el('Delimiter', encode(delimiter)),
        el('IsTruncated', page.truncated),
        ctx.param('encoding-type') === undefined ? undefined : el('EncodingType', 'url'),
        ...contents(deps, page, encode, true),
        ...page.prefixes.map((p) => el('CommonPrefixes', [el('Prefix', encode(p))])),
      ],
      { xmlns: S3_NAMESPACE },
    ),
  )
}

/** A continuation token: the cursor, opaque to the client. */
const encodeToken = (cursor: string): string => Buffer.from(cursor, 'utf8').toString('base64url')
function decodeToken(token: string): string {
  const cursor = Buffer.from(token, 'base64url').toString('utf8')
  if (token === '' || cursor === '' || !cursor.isWellFormed() || encodeToken(cursor) !== token || Buffer.byteLength(cursor) > 2048) {
    throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect')
  }
  return cursor
}

export async function listObjectsV2(deps: Deps, ctx: S3Context, bucket: string): Promise<void> {
  await requireBucket(deps, bucket)
  const prefix = ctx.param('prefix') ?? ''
  const delimiter = ctx.param('delimiter') ?? ''
  const token = ctx.param('continuation-token')
  const startAfter = ctx.param('start-after')
  const maxKeys = maxKeysOf(ctx)
  const encode = encodingOf(ctx)
  const cursor = token !== undefined ? decodeToken(token) : startAfter === '' ? undefined : startAfter
  const page = await listPage(deps, bucket, prefix, delimiter, cursor, maxKeys)
  const withOwner = ctx.param('fetch-owner') === 'true'
  ctx.sendXml(
    200,
    el(
      'ListBucketResult',
      [
        el('Name', bucket),
        el('Prefix', encode(prefix)),
        startAfter === undefined ? undefined : el('StartAfter', encode(startAfter)),
        token === undefined ? undefined : el('ContinuationToken', token),
        page.truncated && page.next !== undefined ? el('NextContinuationToken', encodeToken(page.next)) : undefined,
        el('KeyCount', page.objects.length + page.prefixes.length),
        el('MaxKeys', maxKeys),
        delimiter === '' ? undefined : el('Delimiter', encode(delimiter)),
        el('IsTruncated', page.truncated),
        ctx.param('encoding-type') === undefined ? undefined : el('EncodingType', 'url'),
        ...contents(deps, page, encode, withOwner),
        ...page.prefixes.map((p) => el('CommonPrefixes', [el('Prefix', encode(p))])),
      ],
      { xmlns: S3_NAMESPACE },
    ),
  )
}
