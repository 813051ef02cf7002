// Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
// ListMultipartUploads, and the cleaning of uploads left incomplete. An upload is the record
// `.s3/uploads/<bucket>/<uploadId>` (the object's key and metadata in its metadata), each part a dcas
// object `.s3/parts/<bucket>/<uploadId>/<00001>`; Complete composes the object from the parts'
// chunks — no bytes copied — and then removes the parts.
import { createHash } from 'node:crypto'
import type { S3Context } from '../context.js'
import { S3Error, messageOf } from '../errors.js'
import { LAST_CHAR, MAX_PART_NUMBER, PARTS_PREFIX, UPLOADS_PREFIX, checkObjectKey, isUploadId, newUploadId, objectKey, partKey, partsPrefix, uploadKey, uploadsPrefix } from '../layout.js'
import { ETAG, describingMetadata, etagOf, metadataFromHeaders } from '../metadata.js'
import { verifiedPayload } from '../payload.js'
import type { GatewayObject, GatewayOpenObject, ObjectMetadata } from '../store-api.js'
import { S3_NAMESPACE, childText, childrenNamed, el, parseXml, type Xml } from '../xml.js'
import { eachLimited, isoDate, requireBucket, toS3Error, toS3WriteError, type Deps } from './common.js'
import { copySourceOf, copyVersion, deleteKey, openCopySource, parseRange, refuseUnsupportedHeaders, writePrecondition } from './objects.js'

/** The upload record's metadata names for the object's key and checksum algorithm (beside the object's own metadata). */
const UPLOAD_KEY = 'upload-key'
const UPLOAD_CHECKSUM = 'upload-checksum-algorithm'
/** How long a Complete may run before its answer starts (200 and then spaces, as S3 keeps a slow Complete alive). */
const COMPLETE_KEEPALIVE_AFTER_MS = 2_000
const COMPLETE_KEEPALIVE_EVERY_MS = 10_000

const empty = async function* (): AsyncGenerator<Uint8Array> {}
const noSuchUpload = (): S3Error => new S3Error('NoSuchUpload', 'The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.')

/** An incomplete upload as its record tells it. */
interface Upload {
  bucket: string
  key: string
  uploadId: string
  initiated: number
  metadata: ObjectMetadata
}

const uploadOf = (bucket: string, record: GatewayObject): Upload => ({
  bucket,
  key: record.metadata[UPLOAD_KEY] ?? '',
  uploadId: record.key.slice(uploadsPrefix(bucket).length),
  initiated: record.updatedAt,
  metadata: record.metadata,
})

/** The upload `uploadId` of `bucket`, which must be for `key`; else `NoSuchUpload`. */
async function getUpload(deps: Deps, bucket: string, key: string, uploadId: string | undefined): Promise<Upload> {
  if (uploadId === undefined || !isUploadId(uploadId)) throw noSuchUpload()
  let record: GatewayObject
  try {
    record = await deps.server.stat(uploadKey(bucket, uploadId))
  } catch (err) {
    throw toS3Error(err, noSuchUpload)
  }
  const upload = uploadOf(bucket, record)
  if (upload.key !== key) throw noSuchUpload()
  return upload
}

function partNumberOf(ctx: S3Context): number {
  const text = ctx.param('partNumber') ?? ''
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN
  if (!(n >= 1 && n <= MAX_PART_NUMBER)) throw new S3Error('InvalidArgument', `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`)
  return n
}

/** Every stored dcas object under `prefix`, page by page. */
async function* listAll(deps: Deps, prefix: string): AsyncGenerator<GatewayObject> {
  let after: string | undefined
  for (;;) {
    const page = await deps.server.list({ prefix, limit: 1000, ...(after === undefined ? {} : { after }) })
    yield* page
    if (page.length < 1000) return
    after = page.at(-1)!.key
  }
}

/** The incomplete uploads of `bucket`, at most `limit` (in upload id order, which is age order). */
async function uploadsOf(deps: Deps, bucket: string, limit: number): Promise<Upload[]> {
  const out: Upload[] = []
  for await (const record of listAll(deps, uploadsPrefix(bucket))) {
    out.push(uploadOf(bucket, record))
    if (out.length >= limit) break
  }
  return out
}

export async function createMultipartUpload(deps: Deps, ctx: S3Context, bucket: string, key: string): Promise<void> {
  checkObjectKey(bucket, key)
  refuseUnsupportedHeaders(ctx)
  await requireBucket(deps, bucket)
  const metadata = metadataFromHeaders((n) => ctx.header(n), ctx.headers.keys())
  const algorithm = ctx.header('x-amz-checksum-algorithm')?.toUpperCase()
  if (algorithm !== undefined && !['CRC32', 'CRC32C', 'SHA1', 'SHA256'].includes(algorithm)) throw new S3Error('NotImplemented', `The checksum algorithm ${algorithm.slice(0, 40)} is not supported: use CRC32, CRC32C, SHA1 or SHA256.`)
  if ((await uploadsOf(deps, bucket, deps.maxUploads)).length >= deps.maxUploads) {
    throw new S3Error('TooManyUploads', `The bucket has ${deps.maxUploads} incomplete multipart uploads, the most this gateway keeps: complete or abort some (ListMultipartUploads shows them).`)
  }
  const uploadId = newUploadId()
  try {
    await deps.server.store(uploadKey(bucket, uploadId), empty(), {
      signal: ctx.signal,
      metadata: { ...metadata, [UPLOAD_KEY]: key, ...(algorithm === undefined ? {} : { [UPLOAD_CHECKSUM]: algorithm }) },
    })
  } catch (err) {
    throw toS3WriteError(err)
  }
  ctx.sendXml(200, el('InitiateMultipartUploadResult', [el('Bucket', bucket), el('Key', key), el('UploadId', uploadId)], { xmlns: S3_NAMESPACE }), algorithm === undefined ? {} : { 'x-amz-checksum-algorithm': algorithm })
}

/** After a part is stored: if its upload went meanwhile (aborted, completed), the part goes too. */
async function keepPartIfUploadLives(deps: Deps, upload: Upload, part: string): Promise<void> {
  if (await deps.server.has(uploadKey(upload.bucket, upload.uploadId))) return
  await deleteKey(deps, part).catch(() => {})
  throw noSuchUpload()
}

export async function uploadPart(deps: Deps, ctx: S3Context, bucket: string, key: string): Promise<void> {
  checkObjectKey(bucket, key)
  const partNumber = partNumberOf(ctx)
  const upload = await getUpload(deps, bucket, key, ctx.param('uploadId'))
  const payload = verifiedPayload(ctx, { maxBytes: deps.maxPutSize })
  const part = partKey(bucket, upload.uploadId, partNumber)
  try {
    await deps.server.store(part, payload.data, { signal: ctx.signal, metadata: () => ({ [ETAG]: payload.info.md5, ...payload.info.checksums }) })
  } catch (err) {
    throw toS3WriteError(err)
  }
  await keepPartIfUploadLives(deps, upload, part)
  ctx.sendEmpty(200, { etag: `"${payload.info.md5}"`, ...payload.info.checksums })
}

export async function uploadPartCopy(deps: Deps, ctx: S3Context, bucket: string, key: string): Promise<void> {
  checkObjectKey(bucket, key)
  const partNumber = partNumberOf(ctx)
  const upload = await getUpload(deps, bucket, key, ctx.param('uploadId'))
  const source = await copySourceOf(deps, ctx)
  // One version of the source: the one whose conditions were checked is the one copied.
  const object = await openCopySource(deps, ctx, source)
  const part = partKey(bucket, upload.uploadId, partNumber)
  const rangeHeader = ctx.header('x-amz-copy-source-range')
  let etag: string
  if (rangeHeader === undefined && /^[0-9a-f]{32}$/.test(object.stat.metadata[ETAG] ?? '')) {
    // The whole source, whose ETag is its MD5: its chunks are shared, no byte copied.
    const stat = await copyVersion(deps, ctx, part, source, object, (s) => ({ [ETAG]: s.metadata[ETAG] ?? '' }), { failure: () => new S3Error('PreconditionFailed', '') })
    etag = etagOf(stat)
  } else {
    try {
      etag = await copyPartBytes(deps, ctx, part, object, rangeHeader)
    } finally {
      object.close()
    }
  }
  await keepPartIfUploadLives(deps, upload, part)
  ctx.sendXml(200, el('CopyPartResult', [el('ETag', etag), el('LastModified', isoDate(Date.now()))], { xmlns: S3_NAMESPACE }))
}

/**
 * Stores a range of the opened source version (all of it without `rangeHeader`) as `part`; its bytes pass
 * through to compute the part's MD5, and chunks that line up with the source's are stored once anyway
 * (dcas keeps each distinct chunk once). Resolves to the part's ETag.
 */
async function copyPartBytes(deps: Deps, ctx: S3Context, part: string, object: GatewayOpenObject, rangeHeader: string | undefined): Promise<string> {
  const { size } = object.stat
  let offset = 0
  let length = size
  if (rangeHeader !== undefined) {
    if (!/^bytes=\d+-\d+$/.test(rangeHeader.trim())) throw new S3Error('InvalidArgument', 'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy')
    let range: { start: number; end: number } | undefined
    try {
      range = parseRange(rangeHeader, size)
    } catch {
      range = undefined
    }
    const last = Number(rangeHeader.trim().split('-')[1])
    if (range === undefined || last >= size) throw new S3Error('InvalidArgument', `Range specified is not valid for source object of size: ${size}`)
    offset = range.start
    length = range.end - range.start + 1
  }
  if (length > deps.maxPutSize) throw new S3Error('EntityTooLarge', `Your proposed upload exceeds the maximum allowed size of ${deps.maxPutSize} bytes.`)
  const md5 = createHash('md5')
  const bytes = object.read({ offset, length, signal: ctx.signal })
  const data = (async function* (): AsyncGenerator<Uint8Array> {
    for await (const piece of bytes as AsyncIterable<Buffer>) {
      md5.update(piece)
      yield piece
    }
  })()
  let digest = ''
  try {
    await deps.server.store(part, data, {
      signal: ctx.signal,
      metadata: () => ({ [ETAG]: (digest = md5.digest('hex')) }),
    })
  } catch (err) {
    throw toS3WriteError(err)
  } finally {
    bytes.destroy()
  }
  return `"${digest}"`
}

/** The stored parts of an upload, by part number. */
async function partsOf(deps: Deps, upload: Upload): Promise<Map<number, GatewayObject>> {
  const prefix = partsPrefix(upload.bucket, upload.uploadId)
  const parts = new Map<number, GatewayObject>()
  for await (const part of listAll(deps, prefix)) parts.set(Number(part.key.slice(prefix.length)), part)
  return parts
}

/** Removes an upload: its record first (so it is gone for everyone), then its parts. */
async function removeUpload(deps: Deps, bucket: string, uploadId: string): Promise<number> {
  await deleteKey(deps, uploadKey(bucket, uploadId))
  const parts: string[] = []
  for await (const part of listAll(deps, partsPrefix(bucket, uploadId))) parts.push(part.key)
  await eachLimited(parts, 4, (k) => deleteKey(deps, k))
  return parts.length
}

export async function completeMultipartUpload(deps: Deps, ctx: S3Context, bucket: string, key: string, background: (work: Promise<unknown>) => void): Promise<void> {
  checkObjectKey(bucket, key)
  const upload = await getUpload(deps, bucket, key, ctx.param('uploadId'))
  const request = await parseXml(verifiedPayload(ctx, { checksumHeaders: false }).data, { maxBytes: 4 * 1024 * 1024, maxElements: 8 * MAX_PART_NUMBER + 16 })
  if (request === undefined) throw new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema: the body is empty')
  if (request.name !== 'CompleteMultipartUpload') throw new S3Error('MalformedXML', `The XML you provided was not well-formed or did not validate against our published schema: expected <CompleteMultipartUpload>, got <${request.name}>`)
  const requested = childrenNamed(request, 'Part').map((p) => {
    const number = Number(childText(p, 'PartNumber')?.trim())
    const etag = childText(p, 'ETag')?.trim().replace(/^"|"$/g, '')
    if (!Number.isInteger(number) || etag === undefined) throw new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema: each <Part> needs <PartNumber> and <ETag>')
    const checksums: Record<string, string> = {}
    for (const alg of ['CRC32', 'CRC32C', 'SHA1', 'SHA256']) {
      const value = childText(p, `Checksum${alg}`)?.trim()
      if (value !== undefined) checksums[`x-amz-checksum-${alg.toLowerCase()}`] = value
    }
    return { number, etag, checksums }
  })
  if (requested.length === 0 || requested.length > MAX_PART_NUMBER) throw new S3Error('MalformedXML', `The XML you provided was not well-formed or did not validate against our published schema: name 1 to ${MAX_PART_NUMBER} parts`)
  for (let i = 1; i < requested.length; i++) {
    if (requested[i]!.number <= requested[i - 1]!.number) throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order. The parts list must be specified in order by part number.')
  }
  const stored = await partsOf(deps, upload)
  const parts = requested.map((r) => {
    const part = stored.get(r.number)
    const invalid = (): S3Error => new S3Error('InvalidPart', `One or more of the specified parts could not be found, or its entity tag or checksum did not match: part ${r.number}.`)
    if (part === undefined || part.metadata[ETAG] !== r.etag) throw invalid()
    for (const [name, value] of Object.entries(r.checksums)) if (part.metadata[name] !== undefined && part.metadata[name] !== value) throw invalid()
    return part
  })
  parts.forEach((part, i) => {
    if (i < parts.length - 1 && part.size < deps.minPartSize) throw new S3Error('EntityTooSmall', `Your proposed upload is smaller than the minimum allowed object size: part ${requested[i]!.number} has ${part.size} bytes, and every part but the last needs ${deps.minPartSize}.`)
  })
  const md5s = requested.map((r) => Buffer.from(r.etag, 'hex'))
  const etag = `${createHash('md5').update(Buffer.concat(md5s)).digest('hex')}-${requested.length}`
  const precondition = writePrecondition(ctx)
  const target = objectKey(bucket, key)
  const composing = deps.server.compose(
    target,
    requested.map((r) => partKey(bucket, upload.uploadId, r.number)),
    { signal: ctx.signal, metadata: { ...describingMetadata(upload.metadata), [ETAG]: etag }, ...(precondition.check === undefined ? {} : { precondition: precondition.check }) },
  )
  const result = el('CompleteMultipartUploadResult', [el('Location', `/${bucket}/${key}`), el('Bucket', bucket), el('Key', key), el('ETag', `"${etag}"`)], { xmlns: S3_NAMESPACE })

  // A long compose (it reads the parts once to hash the whole) answers 200 at once and keeps the
  // connection alive with spaces, as S3 does; its outcome, even an error, is then the body.
  let timer: NodeJS.Timeout | undefined
  const slow = new Promise<'slow'>((resolve) => (timer = setTimeout(() => resolve('slow'), COMPLETE_KEEPALIVE_AFTER_MS)))
  const first = await Promise.race([composing.then(() => 'done' as const, () => 'failed' as const), slow])
  clearTimeout(timer)
  if (first !== 'slow') {
    try {
      await composing
    } catch (err) {
      throw (err as { code?: string }).code === 'ERR_PRECONDITION' ? precondition.failure() : toS3WriteError(err)
    }
    await finishUpload(deps, upload, background)
    ctx.sendXml(200, result)
    return
  }
  ctx.writeHead(200, { 'content-type': 'application/xml' })
  ctx.res.write('<?xml version="1.0" encoding="UTF-8"?>\n')
  const keepalive = setInterval(() => ctx.res.write(' '), COMPLETE_KEEPALIVE_EVERY_MS)
  let outcome: Xml
  try {
    await composing
    await finishUpload(deps, upload, background)
    outcome = result
  } catch (err) {
    const s3 = (err as { code?: string }).code === 'ERR_PRECONDITION' ? precondition.failure() : toS3WriteError(err)
    outcome = el('Error', [el('Code', s3.code), el('Message', s3.message), el('Resource', ctx.resource), el('RequestId', ctx.requestId)])
  } finally {
    clearInterval(keepalive)
  }
  ctx.res.end(outcome.text)
}

/** After Complete: the upload record goes now, its parts in the background (their chunks live on in the object). */
async function finishUpload(deps: Deps, upload: Upload, background: (work: Promise<unknown>) => void): Promise<void> {
  await deleteKey(deps, uploadKey(upload.bucket, upload.uploadId)).catch((err: unknown) => deps.log.warn({ bucket: upload.bucket, uploadId: upload.uploadId, err: messageOf(err) }, 's3: removing a completed upload failed; the cleaner retries'))
  background(removeUpload(deps, upload.bucket, upload.uploadId).catch((err: unknown) => deps.log.warn({ bucket: upload.bucket, uploadId: upload.uploadId, err: messageOf(err) }, 's3: removing the parts of a completed upload failed; the cleaner retries')))
}

export async function abortMultipartUpload(deps: Deps, ctx: S3Context, bucket: string, key: string): Promise<void> {
  checkObjectKey(bucket, key)
  const upload = await getUpload(deps, bucket, key, ctx.param('uploadId'))
  await removeUpload(deps, bucket, upload.uploadId)
  ctx.sendEmpty(204)
}

const checksumElements = (metadata: ObjectMetadata): Xml[] =>
  Object.entries(metadata)
    .filter(([name]) => name.startsWith('x-amz-checksum-'))
    .map(([name, value]) => el(`Checksum${name.slice('x-amz-checksum-'.length).toUpperCase()}`, value))

function boundedInt(ctx: S3Context, name: string, max: number): number {
  const text = ctx.param(name)
  if (text === undefined) return max
  if (!/^\d{1,9}$/.test(text)) throw new S3Error('InvalidArgument', `Provided ${name} not an integer or within integer range`)
  return Math.min(Number(text), max)
}

export async function listParts(deps: Deps, ctx: S3Context, bucket: string, key: string): Promise<void> {
  checkObjectKey(bucket, key)
  const upload = await getUpload(deps, bucket, key, ctx.param('uploadId'))
  const maxParts = boundedInt(ctx, 'max-parts', 1000)
  const markerText = ctx.param('part-number-marker') ?? '0'
  if (!/^\d{1,5}$/.test(markerText)) throw new S3Error('InvalidArgument', 'Provided part-number-marker not an integer or within integer range')
  const marker = Number(markerText)
  const prefix = partsPrefix(bucket, upload.uploadId)
  const page = maxParts === 0 ? [] : await deps.server.list({ prefix, limit: maxParts + 1, ...(marker === 0 ? {} : { after: partKey(bucket, upload.uploadId, marker) }) })
  const parts = page.slice(0, maxParts)
  const truncated = page.length > maxParts
  const numberOf = (p: GatewayObject): number => Number(p.key.slice(prefix.length))
  ctx.sendXml(
    200,
    el(
      'ListPartsResult',
      [
        el('Bucket', bucket),
        el('Key', key),
        el('UploadId', upload.uploadId),
        el('Initiator', [el('ID', deps.ownerId), el('DisplayName', 'dcas')]),
        el('Owner', [el('ID', deps.ownerId), el('DisplayName', 'dcas')]),
        el('StorageClass', 'STANDARD'),
        el('PartNumberMarker', marker),
        parts.length === 0 ? undefined : el('NextPartNumberMarker', numberOf(parts.at(-1)!)),
        el('MaxParts', maxParts),
        el('IsTruncated', truncated),
        upload.metadata[UPLOAD_CHECKSUM] === undefined ? undefined : el('ChecksumAlgorithm', upload.metadata[UPLOAD_CHECKSUM]),
        ...parts.map((p) => el('Part', [el('PartNumber', numberOf(p)), el('LastModified', isoDate(p.updatedAt)), el('ETag', etagOf(p)), el('Size', p.size), ...checksumElements(p.metadata)])),
      ],
      { xmlns: S3_NAMESPACE },
    ),
  )
}

export async function listMultipartUploads(deps: Deps, ctx: S3Context, bucket: string): Promise<void> {
  await requireBucket(deps, bucket)
  const prefix = ctx.param('prefix') ?? ''
  const delimiter = ctx.param('delimiter') ?? ''
  const keyMarker = ctx.param('key-marker') ?? ''
  const uploadIdMarker = ctx.param('upload-id-marker') ?? ''
  const maxUploads = boundedInt(ctx, 'max-uploads', 1000)
  // Uploads are kept in id order; S3 lists them by key, then by age: sorted here (there are at most maxUploads).
  const all = (await uploadsOf(deps, bucket, deps.maxUploads))
    .filter((u) => u.key.startsWith(prefix))
    .sort((a, b) => (a.key === b.key ? (a.uploadId < b.uploadId ? -1 : 1) : Buffer.compare(Buffer.from(a.key), Buffer.from(b.key))))
  const afterMarker = all.filter((u) => {
    if (keyMarker === '') return true
    const c = Buffer.compare(Buffer.from(u.key), Buffer.from(keyMarker))
    return c > 0 || (c === 0 && uploadIdMarker !== '' && u.uploadId > uploadIdMarker)
  })
  const uploads: Upload[] = []
  const prefixes: string[] = []
  let truncated = false
  let last: { key: string; uploadId: string } | undefined
  for (const u of afterMarker) {
    const at = delimiter === '' ? -1 : u.key.indexOf(delimiter, prefix.length)
    const common = at < 0 ? undefined : u.key.slice(0, at + delimiter.length)
    if (common !== undefined && prefixes.at(-1) === common) continue
    if (uploads.length + prefixes.length >= maxUploads) {
      truncated = true
      break
    }
    if (common !== undefined) {
      prefixes.push(common)
      last = { key: common, uploadId: '' }
    } else {
      uploads.push(u)
      last = { key: u.key, uploadId: u.uploadId }
    }
  }
  ctx.sendXml(
    200,
    el(
      'ListMultipartUploadsResult',
      [
        el('Bucket', bucket),
        el('KeyMarker', keyMarker),
        el('UploadIdMarker', uploadIdMarker),
        truncated && last !== undefined ? el('NextKeyMarker', last.key) : undefined,
        truncated && last !== undefined ? el('NextUploadIdMarker', last.uploadId) : undefined,
        prefix === '' ? undefined : el('Prefix', prefix),
        delimiter === '' ? undefined : el('Delimiter', delimiter),
        el('MaxUploads', maxUploads),
        el('IsTruncated', truncated),
        ...uploads.map((u) =>
          el('Upload', [
            el('Key', u.key),
            el('UploadId', u.uploadId),
            el('Initiator', [el('ID', deps.ownerId), el('DisplayName', 'dcas')]),
            el('Owner', [el('ID', deps.ownerId), el('DisplayName', 'dcas')]),
            el('StorageClass', 'STANDARD'),
            el('Initiated', isoDate(u.initiated)),
          ]),
        ),
        ...prefixes.map((p) => el('CommonPrefixes', [el('Prefix', p)])),
      ],
      { xmlns: S3_NAMESPACE },
    ),
  )
}

/** Aborts the uploads of `bucket` that `filter` picks; resolves to how many. */
export async function abortUploadsOf(deps: Deps, bucket: string, filter: (upload: Upload) => boolean): Promise<number> {
  let aborted = 0
  for (const upload of await uploadsOf(deps, bucket, Number.MAX_SAFE_INTEGER)) {
    if (!filter(upload)) continue
    await removeUpload(deps, bucket, upload.uploadId)
    aborted++
  }
  return aborted
}

/** What one cleaning pass removed. */
export interface CleanupResult {
  /** Incomplete uploads older than the age limit, removed with their parts. */
  uploads: number
  /** Parts whose upload was gone (a part stored while its upload was completed or aborted). */
  orphanParts: number
}

/** Removes incomplete uploads initiated before `olderThan` (ms since the epoch), and parts whose upload is gone. */
export async function cleanUploads(deps: Deps, olderThan: number): Promise<CleanupResult> {
  const result: CleanupResult = { uploads: 0, orphanParts: 0 }
  const stale: Array<{ bucket: string; uploadId: string }> = []
  for await (const record of listAll(deps, UPLOADS_PREFIX)) {
    if (record.updatedAt >= olderThan) continue
    const rest = record.key.slice(UPLOADS_PREFIX.length)
    const slash = rest.lastIndexOf('/')
    stale.push({ bucket: rest.slice(0, slash), uploadId: rest.slice(slash + 1) })
  }
  for (const { bucket, uploadId } of stale) {
    await removeUpload(deps, bucket, uploadId)
    result.uploads++
    deps.log.info({ bucket, uploadId }, 's3: removed an incomplete multipart upload past its age limit')
  }
  // Parts without their upload, upload by upload: a live upload's parts are skipped in one step.
  let after: string | undefined
  for (;;) {
    const page = await deps.server.list({ prefix: PARTS_PREFIX, limit: 1, ...(after === undefined ? {} : { after }) })
    const part = page[0]
    if (part === undefined) break
    const rest = part.key.slice(PARTS_PREFIX.length)
    const [bucket, uploadId] = rest.split('/') as [string, string]
    const live = await deps.server.has(uploadKey(bucket, uploadId))
    if (!live) result.orphanParts += await removeUpload(deps, bucket, uploadId)
    after = partsPrefix(bucket, uploadId) + LAST_CHAR
  }
  return result
}

export { type Upload }
