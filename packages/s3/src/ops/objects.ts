// Object operations: PutObject (conditional with If-None-Match / If-Match), GetObject and HeadObject
// (ranges and conditions), DeleteObject, DeleteObjects, CopyObject (a compose: chunks shared).
import { pipeline } from 'node:stream/promises'
import type { S3Context } from '../context.js'
import { S3Error, codeOf } from '../errors.js'
import { checkObjectKey, objectKey } from '../layout.js'
import { ETAG, describingMetadata, etagOf, metadataFromHeaders, metadataHeaders } from '../metadata.js'
import { verifiedPayload } from '../payload.js'
import type { GatewayObject, ObjectMetadata } from '../store-api.js'
import { S3_NAMESPACE, childText, childrenNamed, el, parseXml, type Xml } from '../xml.js'
import { eachLimited, etagMatches, httpDate, isoDate, parseHttpDate, requireBucket, toS3Error, toS3WriteError, type Deps } from './common.js'

/** Most keys one DeleteObjects may name, as S3. */
const MAX_DELETE_KEYS = 1000

const noSuchKey = (): S3Error => new S3Error('NoSuchKey', 'The specified key does not exist.')

/** Refuses the headers of features the gateway does not have (rather than ignoring what a client relies on). */
export function refuseUnsupportedHeaders(ctx: S3Context): void {
  const sse = ctx.header('x-amz-server-side-encryption')
  if (sse !== undefined && sse !== 'AES256') throw new S3Error('NotImplemented', `Server-side encryption ${sse.slice(0, 40)} is not supported (dcas encrypts every replica itself; AES256 is accepted).`)
  for (const name of ['x-amz-server-side-encryption-customer-algorithm', 'x-amz-tagging', 'x-amz-object-lock-mode', 'x-amz-object-lock-retain-until-date', 'x-amz-object-lock-legal-hold', 'x-amz-website-redirect-location']) {
    if (ctx.headers.has(name)) throw new S3Error('NotImplemented', `The ${name} header is not supported by this gateway.`)
  }
}

/** The checks of a conditional write: `If-None-Match: *` (only if there is no object) and `If-Match` (only if its ETag matches). */
export function writePrecondition(ctx: S3Context): { check?: (current: GatewayObject | undefined) => boolean; failure: () => S3Error } {
  const ifNoneMatch = ctx.header('if-none-match')
  const ifMatch = ctx.header('if-match')
  if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') throw new S3Error('NotImplemented', 'If-None-Match on a write supports only *.')
  let missing = false
  const failure = (): S3Error => (missing ? noSuchKey() : new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold.'))
  if (ifNoneMatch === undefined && ifMatch === undefined) return { failure }
  return {
    failure,
    check: (current) => {
      if (ifNoneMatch !== undefined && current !== undefined) return false
      if (ifMatch !== undefined) {
        missing = current === undefined
        if (current === undefined || !etagMatches(ifMatch, etagOf(current))) return false
      }
      return true
    },
  }
}

/** Runs a store or compose, mapping its precondition failure and other errors onto S3's. */
async function committing<T>(write: Promise<T>, precondition: ReturnType<typeof writePrecondition>): Promise<T> {
  try {
    return await write
  } catch (err) {
    if (codeOf(err) === 'ERR_PRECONDITION') throw precondition.failure()
    throw toS3WriteError(err)
  }
}

/** The checksums an object keeps, as response headers. */
const checksumHeaders = (metadata: ObjectMetadata): Record<string, string> => Object.fromEntries(Object.entries(metadata).filter(([name]) => name.startsWith('x-amz-checksum-')))

export async function putObject(deps: Deps, ctx: S3Context, bucket: string, key: string): Promise<void> {
  checkObjectKey(bucket, key)
  refuseUnsupportedHeaders(ctx)
  await requireBucket(deps, bucket)
  const metadata = metadataFromHeaders((n) => ctx.header(n), ctx.headers.keys())
  const precondition = writePrecondition(ctx)
  const payload = verifiedPayload(ctx, { maxBytes: deps.maxPutSize })
  const kept = (): ObjectMetadata => ({ ...metadata, [ETAG]: payload.info.md5, ...payload.info.checksums })
  await committing(
    deps.server.store(objectKey(bucket, key), payload.data, { signal: ctx.signal, metadata: kept, ...(precondition.check === undefined ? {} : { precondition: precondition.check }) }),
    precondition,
  )
  ctx.sendEmpty(200, { etag: `"${payload.info.md5}"`, ...payload.info.checksums })
}

/** Parses a `Range` header against `size`: the byte range, `undefined` for the whole object (no header, several ranges), or `InvalidRange`. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  if (header === undefined) return undefined
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header)
  if (m === null) return undefined // several ranges or another unit: the whole object, as HTTP allows
  const [, first, last] = m as unknown as [string, string, string]
  let start: number
  let end: number
  if (first === '') {
    if (last === '') return undefined
    const suffix = Number(last)
    if (suffix === 0 || size === 0) throw invalidRange(size)
    start = Math.max(0, size - suffix)
    end = size - 1
  } else {
    start = Number(first)
    end = last === '' ? size - 1 : Math.min(Number(last), size - 1)
    if (last !== '' && Number(last) < start) return undefined // not a valid range: ignored, as HTTP says
    if (start >= size) throw invalidRange(size)
  }
  return { start, end }
}

const invalidRange = (size: number): S3Error => Object.assign(new S3Error('InvalidRange', 'The requested range is not satisfiable'), { size })

/** The answer to a GET or HEAD's conditions: `undefined` to go on, else the status (304 or 412). */
function readCondition(ctx: S3Context, etag: string, updatedAt: number): 304 | 412 | undefined {
  const modified = Math.floor(updatedAt / 1000) * 1000 // HTTP dates have whole seconds
  const ifMatch = ctx.header('if-match')
  const ifNoneMatch = ctx.header('if-none-match')
  if (ifMatch !== undefined) {
    if (!etagMatches(ifMatch, etag)) return 412
  } else {
    const since = parseHttpDate(ctx.header('if-unmodified-since'))
    if (since !== undefined && modified > since) return 412
  }
  if (ifNoneMatch !== undefined) {
    if (etagMatches(ifNoneMatch, etag)) return 304
  } else {
    const since = parseHttpDate(ctx.header('if-modified-since'))
    if (since !== undefined && modified <= since) return 304
  }
  return undefined
}

/** `response-content-type` and the like: a presigned GET's overrides of the response headers. */
const OVERRIDES = ['content-type', 'content-language', 'expires', 'cache-control', 'content-disposition', 'content-encoding']

export async function getObject(deps: Deps, ctx: S3Context, bucket: string, key: string): Promise<void> {
  checkObjectKey(bucket, key)
  if (ctx.has('partNumber')) throw new S3Error('NotImplemented', 'GetObject and HeadObject by partNumber are not supported; use Range.')
  await requireBucket(deps, bucket)
  const dcasKey = objectKey(bucket, key)
  let stat: GatewayObject
  try {
    stat = await deps.server.stat(dcasKey)
  } catch (err) {
    throw toS3Error(err, noSuchKey)
  }
  const etag = etagOf(stat)
  const base = { etag, 'last-modified': httpDate(stat.updatedAt) }
  const condition = readCondition(ctx, etag, stat.updatedAt)
  if (condition === 304) return ctx.sendEmpty(304, base)
  if (condition === 412) throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold.')

  let range: { start: number; end: number } | undefined
  try {
    range = parseRange(ctx.header('range'), stat.size)
  } catch (err) {
    if (err instanceof S3Error && err.code === 'InvalidRange') ctx.res.setHeader('content-range', `bytes */${stat.size}`)
    throw err
  }
  const checksumMode = ctx.header('x-amz-checksum-mode')?.toUpperCase() === 'ENABLED'
  const headers: Record<string, string> = {
    ...metadataHeaders(stat.metadata, checksumMode && range === undefined),
    ...base,
    'accept-ranges': 'bytes',
  }
  for (const name of OVERRIDES) {
    const value = ctx.param(`response-${name}`)
    if (value !== undefined) headers[name] = value
  }
  const offset = range?.start ?? 0
  const length = range === undefined ? stat.size : range.end - range.start + 1
  headers['content-length'] = String(length)
  if (range !== undefined) headers['content-range'] = `bytes ${range.start}-${range.end}/${stat.size}`
  const status = range === undefined ? 200 : 206
  if (ctx.method === 'HEAD' || length === 0) return ctx.sendEmpty(status, headers)

  const source = deps.server.read(dcasKey, { offset, length, signal: ctx.signal })
  const pieces = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>
  // The first piece is read before the status goes out, so a read that fails at once gets its own error.
  let first: IteratorResult<Buffer>
  try {
    first = await pieces.next()
  } catch (err) {
    source.destroy()
    throw toS3Error(err, noSuchKey)
  }
  ctx.writeHead(status, headers)
  async function* body(): AsyncGenerator<Buffer> {
    try {
      for (let next = first; next.done !== true; next = await pieces.next()) yield next.value
    } finally {
      source.destroy()
    }
  }
  try {
    await pipeline(body(), ctx.res)
  } catch (err) {
    // The status is gone: the connection is cut, so the client sees a short body, never a clean end.
    if (!ctx.signal.aborted) deps.log.warn({ bucket, key, err: err instanceof Error ? err.message : String(err) }, 's3: read failed mid-transfer')
    ctx.res.destroy()
  }
}

export async function deleteObject(deps: Deps, ctx: S3Context, bucket: string, key: string): Promise<void> {
  checkObjectKey(bucket, key)
  await requireBucket(deps, bucket)
  await deleteKey(deps, objectKey(bucket, key), ctx.signal)
  ctx.sendEmpty(204)
}

/** Deletes a dcas key if it is there (deleting nothing is no error in S3). */
export async function deleteKey(deps: Deps, dcasKey: string, signal?: AbortSignal): Promise<void> {
  if (!(await deps.server.has(dcasKey))) return
  try {
    await deps.server.delete(dcasKey, signal === undefined ? {} : { signal })
  } catch (err) {
    if (codeOf(err) !== 'ERR_NOT_FOUND') throw toS3Error(err)
  }
}

export async function deleteObjects(deps: Deps, ctx: S3Context, bucket: string): Promise<void> {
  await requireBucket(deps, bucket)
  const request = await parseXml(verifiedPayload(ctx).data, { maxBytes: 8 * 1024 * 1024, maxElements: 4 * MAX_DELETE_KEYS + 16 })
  if (request === undefined) throw new S3Error('MissingRequestBodyError', 'Request Body is empty.')
  if (request.name !== 'Delete') throw new S3Error('MalformedXML', `The XML you provided was not well-formed or did not validate against our published schema: expected <Delete>, got <${request.name}>`)
  const quiet = childText(request, 'Quiet')?.trim() === 'true'
  const objects = childrenNamed(request, 'Object')
  if (objects.length === 0 || objects.length > MAX_DELETE_KEYS) throw new S3Error('MalformedXML', `The XML you provided was not well-formed or did not validate against our published schema: a Delete names 1 to ${MAX_DELETE_KEYS} objects, not ${objects.length}`)
  const keys = objects.map((o) => {
    const key = childText(o, 'Key')
    if (key === undefined) throw new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema: an <Object> without <Key>')
    return { key, versionId: childText(o, 'VersionId') }
  })
  const results = new Array<Xml | undefined>(keys.length)
  await eachLimited(
    keys.map((k, i) => ({ ...k, i })),
    8,
    async ({ key, versionId, i }) => {
      try {
        if (versionId !== undefined && versionId !== 'null') throw new S3Error('NotImplemented', 'Versioning is not supported: only the version "null" exists.')
        checkObjectKey(bucket, key)
        await deleteKey(deps, objectKey(bucket, key), ctx.signal)
        results[i] = quiet ? undefined : el('Deleted', [el('Key', key)])
      } catch (err) {
        const s3 = toS3Error(err)
        results[i] = el('Error', [el('Key', key), el('Code', s3.code), el('Message', s3.message)])
      }
    },
  )
  ctx.sendXml(200, el('DeleteResult', results, { xmlns: S3_NAMESPACE }))
}

/** `x-amz-copy-source`: `[/]bucket/key[?versionId=…]`, URL-encoded. */
export function parseCopySource(header: string): { bucket: string; key: string } {
  let text = header.trim()
  const q = text.indexOf('?')
  if (q >= 0) {
    const versionId = new URLSearchParams(text.slice(q + 1)).get('versionId')
    if (versionId !== null && versionId !== 'null') throw new S3Error('NotImplemented', 'Versioning is not supported: only the version "null" exists.')
    text = text.slice(0, q)
  }
  let decoded: string
  try {
    decoded = decodeURIComponent(text)
  } catch (err) {
    throw new S3Error('InvalidArgument', 'Invalid copy source encoding.', { cause: err })
  }
  if (decoded.startsWith('/')) decoded = decoded.slice(1)
  const slash = decoded.indexOf('/')
  if (slash <= 0 || slash === decoded.length - 1) throw new S3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey.')
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1) }
}

/** The source of a copy, its current stat, after its `x-amz-copy-source-if-*` conditions. */
export async function copySource(deps: Deps, ctx: S3Context): Promise<{ bucket: string; key: string; dcasKey: string; stat: GatewayObject }> {
  const { bucket, key } = parseCopySource(ctx.header('x-amz-copy-source')!)
  checkObjectKey(bucket, key)
  await requireBucket(deps, bucket)
  const dcasKey = objectKey(bucket, key)
  let stat: GatewayObject
  try {
    stat = await deps.server.stat(dcasKey)
  } catch (err) {
    throw toS3Error(err, noSuchKey)
  }
  const etag = etagOf(stat)
  const modified = Math.floor(stat.updatedAt / 1000) * 1000
  const ifMatch = ctx.header('x-amz-copy-source-if-match')
  const ifNoneMatch = ctx.header('x-amz-copy-source-if-none-match')
  const ifUnmodified = parseHttpDate(ctx.header('x-amz-copy-source-if-unmodified-since'))
  const ifModified = parseHttpDate(ctx.header('x-amz-copy-source-if-modified-since'))
  const failed =
    (ifMatch !== undefined && !etagMatches(ifMatch, etag)) ||
    (ifMatch === undefined && ifUnmodified !== undefined && modified > ifUnmodified) ||
    (ifNoneMatch !== undefined && etagMatches(ifNoneMatch, etag)) ||
    (ifNoneMatch === undefined && ifModified !== undefined && modified <= ifModified)
  if (failed) throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold.')
  return { bucket, key, dcasKey, stat }
}

/**
 * Composes `target` from `source`'s chunks with metadata made from the source's stat; when the
 * source changed between its stat and the compose (its SHA-256 differs), composes again from the new stat.
 */
export async function composeFrom(
  deps: Deps,
  target: string,
  source: { dcasKey: string; stat: GatewayObject },
  metadataFor: (stat: GatewayObject) => ObjectMetadata,
  options: { signal: AbortSignal; precondition: ReturnType<typeof writePrecondition> },
): Promise<{ stat: GatewayObject; result: { sha256: string } }> {
  let stat = source.stat
  for (let attempt = 0; ; attempt++) {
    const result = await committing(
      deps.server.compose(target, [source.dcasKey], { signal: options.signal, metadata: metadataFor(stat), ...(options.precondition.check === undefined ? {} : { precondition: options.precondition.check }) }),
      options.precondition,
    )
    if (result.sha256 === stat.sha256 || attempt >= 2) return { stat, result }
    try {
      stat = await deps.server.stat(source.dcasKey)
    } catch (err) {
      throw toS3Error(err, noSuchKey)
    }
  }
}

export async function copyObject(deps: Deps, ctx: S3Context, bucket: string, key: string): Promise<void> {
  checkObjectKey(bucket, key)
  refuseUnsupportedHeaders(ctx)
  await requireBucket(deps, bucket)
  const source = await copySource(deps, ctx)
  const directive = (ctx.header('x-amz-metadata-directive') ?? 'COPY').toUpperCase()
  if (directive !== 'COPY' && directive !== 'REPLACE') throw new S3Error('InvalidArgument', 'Unknown metadata directive: use COPY or REPLACE.')
  const target = objectKey(bucket, key)
  if (target === source.dcasKey && directive === 'COPY') {
    throw new S3Error('InvalidRequest', "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
  }
  const replaced = directive === 'REPLACE' ? metadataFromHeaders((n) => ctx.header(n), ctx.headers.keys()) : undefined
  const metadataFor = (stat: GatewayObject): ObjectMetadata => ({
    ...(replaced ?? describingMetadata(stat.metadata)),
    // The bytes are the source's: so are its ETag and checksums.
    ...(stat.metadata[ETAG] === undefined ? {} : { [ETAG]: stat.metadata[ETAG] }),
    ...checksumHeaders(stat.metadata),
  })
  const { stat } = await composeFrom(deps, target, source, metadataFor, { signal: ctx.signal, precondition: writePrecondition(ctx) })
  ctx.sendXml(200, el('CopyObjectResult', [el('ETag', etagOf(stat)), el('LastModified', isoDate(Date.now()))], { xmlns: S3_NAMESPACE }))
}
