// Object operations: PutObject (conditional with If-None-Match / If-Match), GetObject and HeadObject
// (ranges and conditions), DeleteObject, DeleteObjects, CopyObject (a compose: chunks shared).
import { pipeline } from 'node:stream/promises'
import type { S3Context } from '../context.js'
import { S3Error, codeOf } from '../errors.js'
import { checkObjectKey, objectKey } from '../layout.js'
import { ETAG, describingMetadata, etagOf, metadataFromHeaders, metadataHeaders } from '../metadata.js'
import { verifiedPayload } from '../payload.js'
import type { GatewayObject, GatewayOpenObject, ObjectMetadata } from '../store-api.js'
import { S3_NAMESPACE, childText, childrenNamed, el, parseXml, type Xml } from '../xml.js'
import { eachLimited, etagMatches, httpDate, isoDate, openObject, parseHttpDate, refuseAcl, requireBucket, statObject, toS3Error, toS3WriteError, type Deps } from './common.js'

/** Most keys one DeleteObjects may name, as S3. */
const MAX_DELETE_KEYS = 1000

const noSuchKey = (): S3Error => new S3Error('NoSuchKey', 'The specified key does not exist.')

/** Refuses the headers of features the gateway does not have (rather than ignoring what a client relies on). */
export function refuseUnsupportedHeaders(ctx: S3Context): void {
  refuseAcl(ctx)
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
  // A HEAD answers from one stat; a GET from one opened version, so that its headers (the ETag above
  // all) and its body agree whatever happens to the key meanwhile.
  if (ctx.method === 'HEAD') return answerObject(deps, ctx, await statObject(deps, dcasKey), undefined)
  const object = await openObject(deps, dcasKey, ctx.signal)
  try {
    await answerObject(deps, ctx, object.stat, object)
  } finally {
    object.close()
  }
}

/** Answers a GET or HEAD for the version `stat` describes: its conditions, range, headers, and the body from `object` (none for a HEAD). */
async function answerObject(deps: Deps, ctx: S3Context, stat: GatewayObject, object: GatewayOpenObject | undefined): Promise<void> {
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
  if (object === undefined || length === 0) return ctx.sendEmpty(status, headers)

  const source = object.read({ offset, length, signal: ctx.signal })
  const pieces = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>
  // The first piece is read before the status goes out, so a read that fails at once gets its own error.
  let first: IteratorResult<Buffer>
  try {
    first = await pieces.next()
  } catch (err) {
    source.destroy()
    throw toS3Error(err)
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
    if (!ctx.signal.aborted) deps.log.warn({ key: stat.key, err: err instanceof Error ? err.message : String(err) }, 's3: read failed mid-transfer')
    ctx.res.destroy()
  } finally {
    // A client gone mid-body leaves body() waiting on a piece: the read ends here, before its version is closed.
    source.destroy()
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

/** A copy's source: its bucket and key, and its dcas key. */
export interface CopySource {
  bucket: string
  key: string
  dcasKey: string
}

/** The source `x-amz-copy-source` names, in a bucket that exists. */
export async function copySourceOf(deps: Deps, ctx: S3Context): Promise<CopySource> {
  const { bucket, key } = parseCopySource(ctx.header('x-amz-copy-source')!)
  checkObjectKey(bucket, key)
  await requireBucket(deps, bucket)
  return { bucket, key, dcasKey: objectKey(bucket, key) }
}

/** Opens the source's current version and checks its `x-amz-copy-source-if-*` conditions against that version; the caller closes it. */
export async function openCopySource(deps: Deps, ctx: S3Context, source: CopySource): Promise<GatewayOpenObject> {
  const object = await openObject(deps, source.dcasKey, ctx.signal)
  const { stat } = object
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
  if (failed) {
    object.close()
    throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold.')
  }
  return object
}

/** Times a copy onto its own source is tried when the source keeps changing under it. */
const SAME_KEY_ATTEMPTS = 3

/**
 * Makes `target` a copy of the source version `object` (opened by {@link openCopySource}, closed here),
 * sharing its chunks, with the metadata `metadataFor` makes from that version's stat; resolves to that
 * stat. A compose takes the source key's version current when it runs, which may be newer than the
 * opened one; so that the copy's bytes, metadata and checked conditions are of one version:
 * - onto its own source, the compose runs under the key's lock and commits only while the key still
 *   has the opened version; else the source is opened and checked again;
 * - onto another key, a compose that took another version (its SHA-256 differs) is replaced by the
 *   opened version's bytes, read and stored (unless the target was written again since).
 */
export async function copyVersion(
  deps: Deps,
  ctx: S3Context,
  target: string,
  source: CopySource,
  object: GatewayOpenObject,
  metadataFor: (stat: GatewayObject) => ObjectMetadata,
  precondition: ReturnType<typeof writePrecondition>,
): Promise<GatewayObject> {
  for (let attempt = 1; ; attempt++) {
    const { stat } = object
    try {
      if (target === source.dcasKey) {
        let moved = false
        const check = (current: GatewayObject | undefined): boolean => {
          moved = current?.version !== stat.version || current.sha256 !== stat.sha256
          return !moved && (precondition.check?.(current) ?? true)
        }
        try {
          await deps.server.compose(target, [source.dcasKey], { signal: ctx.signal, metadata: metadataFor(stat), precondition: check })
          return stat
        } catch (err) {
          if (codeOf(err) !== 'ERR_PRECONDITION') throw toS3WriteError(err)
          if (!moved) throw precondition.failure()
          if (attempt >= SAME_KEY_ATTEMPTS) throw new S3Error('ServiceUnavailable', 'The source object changed during the copy each time it was tried; please try again.', { cause: err })
        }
      } else {
        const composed = await committing(
          deps.server.compose(target, [source.dcasKey], { signal: ctx.signal, metadata: metadataFor(stat), ...(precondition.check === undefined ? {} : { precondition: precondition.check }) }),
          precondition,
        )
        if (composed.sha256 !== stat.sha256) await restoreVersion(deps, ctx, target, object, metadataFor(stat), composed.version)
        return stat
      }
    } finally {
      object.close()
    }
    object = await openCopySource(deps, ctx, source)
  }
}

/** Stores the bytes of `object` with `metadata` as `target`, in place of the version `replacing` a compose just made of another version. */
async function restoreVersion(deps: Deps, ctx: S3Context, target: string, object: GatewayOpenObject, metadata: ObjectMetadata, replacing: number): Promise<void> {
  deps.log.info({ target, source: object.stat.key }, 's3: the copy source changed during the copy; storing the checked version\'s bytes')
  const bytes = object.read({ signal: ctx.signal })
  try {
    const stored = await deps.server.store(target, bytes as AsyncIterable<Uint8Array>, { signal: ctx.signal, metadata, precondition: (current) => current?.version === replacing })
    if (stored.sha256 !== object.stat.sha256) throw new Error(`the restored copy of ${object.stat.key} has SHA-256 ${stored.sha256}, not ${object.stat.sha256}`)
  } catch (err) {
    // Written again since the compose: that later version stands, as it would after this copy.
    if (codeOf(err) !== 'ERR_PRECONDITION') throw toS3WriteError(err)
  } finally {
    bytes.destroy()
  }
}

export async function copyObject(deps: Deps, ctx: S3Context, bucket: string, key: string): Promise<void> {
  checkObjectKey(bucket, key)
  refuseUnsupportedHeaders(ctx)
  await requireBucket(deps, bucket)
  const source = await copySourceOf(deps, ctx)
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
  const precondition = writePrecondition(ctx)
  const stat = await copyVersion(deps, ctx, target, source, await openCopySource(deps, ctx, source), metadataFor, precondition)
  ctx.sendXml(200, el('CopyObjectResult', [el('ETag', etagOf(stat)), el('LastModified', isoDate(Date.now()))], { xmlns: S3_NAMESPACE }))
}
