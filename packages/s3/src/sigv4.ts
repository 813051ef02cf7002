// AWS Signature Version 4 as S3 uses it: the canonical request, the signing key, and the check of
// a request's signature (Authorization header or presigned query), compared in constant time.
// The streamed-body forms (signed chunks, trailers) are checked by `chunked.ts` from what this returns.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { S3Error } from './errors.js'

/** An access key pair: the id names it in requests, the secret signs them. */
export interface S3Credentials {
  accessKeyId: string
  secretAccessKey: string
}

/** The parts of a request a signature covers. */
export interface SignableRequest {
  method: string
  /** The path as sent, still percent-encoded, without the query. */
  rawPath: string
  /** The query's parameters, decoded, in the order sent. */
  query: ReadonlyArray<readonly [name: string, value: string]>
  /** Each header (lowercase name) with its values in the order sent. */
  headers: ReadonlyMap<string, readonly string[]>
}

/** Payload hashes that are not a SHA-256 of the body. */
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD'
export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'
export const STREAMING_SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER'
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER'
const STREAMING_FORMS = new Set([STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER])

/** Hex SHA-256 of nothing: the hash of every signed chunk's empty "previous headers". */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

/** What a verified signature establishes, and what the body's checks need. */
export interface Authenticated {
  accessKeyId: string
  /** What the signature says of the body: a lowercase hex SHA-256, or one of the payload markers above. */
  payloadHash: string
  /** Whether the signature came in the query (a presigned URL). */
  presigned: boolean
  /** `YYYYMMDDTHHMMSSZ` of the request. */
  amzDate: string
  /** `date/region/s3/aws4_request`. */
  scope: string
  /** The key the request was signed with (for chunk and trailer signatures). */
  signingKey: Buffer
  /** The request's own signature: the first "previous signature" of a chunk chain. */
  signature: string
}

/** Options of {@link verifySignature}. */
export interface VerifyOptions {
  /** The secret of an access key id, or `undefined` when the id is unknown. */
  secretOf: (accessKeyId: string) => string | undefined
  region: string
  /** Milliseconds since the epoch. */
  now: number
  /** Largest difference between the request's time and `now`, in ms. */
  maxClockSkew: number
}

/** Longest validity of a presigned URL: seven days, as S3. */
export const MAX_PRESIGNED_EXPIRY_SECONDS = 7 * 24 * 3600

/** AWS's UriEncode: every byte but `A-Z a-z 0-9 - _ . ~` percent-encoded (and `/` kept, in a path). */
export function uriEncode(text: string, keepSlash = false): string {
  const encoded = encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  return keepSlash ? encoded.replaceAll('%2F', '/') : encoded
}

/** Decodes a path's percent escapes (a `+` stays a `+`); a malformed escape is `InvalidURI`. */
export function decodePath(rawPath: string): string {
  try {
    return decodeURIComponent(rawPath)
  } catch (err) {
    throw new S3Error('InvalidURI', 'Could not parse the specified URI.', { cause: err })
  }
}

/** Splits a raw query string into decoded `[name, value]` pairs (`+` is a space, as form encoding has it). */
export function parseQuery(rawQuery: string): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (const part of rawQuery.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const decode = (s: string): string => {
      try {
        return decodeURIComponent(s.replaceAll('+', ' '))
      } catch (err) {
        throw new S3Error('InvalidURI', 'Could not parse the specified URI.', { cause: err })
      }
    }
    out.push(eq < 0 ? [decode(part), ''] : [decode(part.slice(0, eq)), decode(part.slice(eq + 1))])
  }
  return out
}

/** The canonical URI: the decoded path encoded once, as S3 signs it. */
export function canonicalUri(rawPath: string): string {
  return uriEncode(decodePath(rawPath), true)
}

/** The canonical query string, without `X-Amz-Signature` (a presigned URL's own signature). */
export function canonicalQuery(query: SignableRequest['query']): string {
  return query
    .filter(([name]) => name !== 'X-Amz-Signature')
    .map(([name, value]) => [uriEncode(name), uriEncode(value)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&')
}

/** A header's canonical value: its values trimmed, inner runs of spaces made one, joined by commas. */
function canonicalHeaderValue(values: readonly string[] | undefined): string {
  return (values ?? []).map((v) => v.trim().replace(/\s+/g, ' ')).join(',')
}

/** The canonical request of `request` under `signedHeaders` and `payloadHash`. */
export function canonicalRequest(request: SignableRequest, signedHeaders: readonly string[], payloadHash: string): string {
  const headers = signedHeaders.map((name) => `${name}:${canonicalHeaderValue(request.headers.get(name))}\n`).join('')
  return [request.method, canonicalUri(request.rawPath), canonicalQuery(request.query), headers, signedHeaders.join(';'), payloadHash].join('\n')
}

export const sha256Hex = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex')
const hmac = (key: Uint8Array | string, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest()

const signingKeys = new Map<string, Buffer>()
/** The SigV4 signing key of a secret for a day and region (cached: it changes once a day). */
export function signingKey(secretAccessKey: string, date: string, region: string): Buffer {
  const id = `${sha256Hex(secretAccessKey)}/${date}/${region}`
  let key = signingKeys.get(id)
  if (key === undefined) {
    key = hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, date), region), 's3'), 'aws4_request')
    if (signingKeys.size >= 64) signingKeys.clear()
    signingKeys.set(id, key)
  }
  return key
}

/** The hex HMAC-SHA256 signature of a string to sign. */
export function sign(key: Buffer, stringToSign: string): string {
  return hmac(key, stringToSign).toString('hex')
}

/** Whether `given` is the signature `expected`, compared in constant time. */
export function sameSignature(given: string, expected: string): boolean {
  if (!/^[0-9a-f]{64}$/.test(given)) return false
  return timingSafeEqual(Buffer.from(given, 'hex'), Buffer.from(expected, 'hex'))
}

/** `YYYYMMDDTHHMMSSZ` → milliseconds, or `undefined` when malformed. */
export function parseAmzDate(text: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text)
  if (m === null) return undefined
  const ms = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)
  return Number.isNaN(ms) ? undefined : ms
}

/** Milliseconds → `YYYYMMDDTHHMMSSZ`. */
export function formatAmzDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
}

interface Credential {
  accessKeyId: string
  date: string
  region: string
  scope: string
}

/** Fails a request with what is wrong in its authentication, and the `<Error>` elements S3 adds. */
type Fail = (message: string, fields?: ReadonlyArray<readonly [string, string]>) => S3Error

function parseCredential(text: string, fail: Fail, region: string): Credential {
  const parts = text.split('/')
  if (parts.length !== 5 || parts[0] === '') throw fail(`the Credential "${text}" is not ACCESS_KEY_ID/YYYYMMDD/REGION/s3/aws4_request`)
  const [accessKeyId, date, credentialRegion, service, terminator] = parts as [string, string, string, string, string]
  if (!/^\d{8}$/.test(date)) throw fail(`the Credential's date "${date}" is not YYYYMMDD`)
  if (service !== 's3') throw fail(`the Credential's service is "${service}", expecting "s3"`)
  if (terminator !== 'aws4_request') throw fail(`the Credential ends with "${terminator}", expecting "aws4_request"`)
  // As S3, the answer names the region to sign for (s3cmd retries there): only when the region is what is wrong.
  if (credentialRegion !== region) throw fail(`the region '${credentialRegion}' is wrong; expecting '${region}'`, [['Region', region]])
  return { accessKeyId, date, region, scope: `${date}/${region}/s3/aws4_request` }
}

function parseSignedHeaders(text: string, fail: Fail): string[] {
  const names = text.split(';')
  if (names.some((n) => !/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(n))) throw fail(`SignedHeaders "${text}" is malformed`)
  if (!names.includes('host')) throw fail('SignedHeaders must include host')
  return names
}

/** Refuses `x-amz-*` headers left out of the signature: they change what a request does. */
function checkAllAmzSigned(request: SignableRequest, signed: readonly string[]): void {
  const unsigned = [...request.headers.keys()].filter((name) => name.startsWith('x-amz-') && !signed.includes(name))
  if (unsigned.length > 0) throw new S3Error('AccessDenied', `There were headers present in the request which were not signed: ${unsigned.join(', ')}`)
}

/**
 * Verifies the SigV4 signature of a request, in its `Authorization` header or its query
 * (a presigned URL), and its time. Throws the {@link S3Error} S3 answers; resolves to what
 * the body's checks need.
 */
export function verifySignature(request: SignableRequest, options: VerifyOptions): Authenticated {
  const authorization = request.headers.get('authorization')
  const queryAlgorithm = request.query.find(([name]) => name === 'X-Amz-Algorithm')
  if (authorization !== undefined && queryAlgorithm !== undefined) throw new S3Error('InvalidArgument', 'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified')
  if (authorization !== undefined) return verifyHeaderSignature(request, authorization.join(','), options)
  if (queryAlgorithm !== undefined) return verifyPresigned(request, options)
  // A presigned URL of Signature Version 2 (AWS CLI v1's default `presign`).
  if (request.query.some(([name]) => name === 'Signature') && request.query.some(([name]) => name === 'AWSAccessKeyId')) throw unsupportedMechanism()
  throw new S3Error('AccessDenied', 'Anonymous access is not allowed: sign the request with an access key (AWS Signature Version 4)')
}

/**
 * Signature Version 2, SigV4a…: refused in S3's own words, which clients such as s3cmd look for to switch to
 * Signature Version 4.
 */
const unsupportedMechanism = (): S3Error => new S3Error('InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.')

function verifyHeaderSignature(request: SignableRequest, authorization: string, options: VerifyOptions): Authenticated {
  const fail: Fail = (message, fields) => new S3Error('AuthorizationHeaderMalformed', `The authorization header is malformed; ${message}`, { fields: fields ?? [] })
  const space = authorization.indexOf(' ')
  const algorithm = space < 0 ? authorization : authorization.slice(0, space)
  if (algorithm !== 'AWS4-HMAC-SHA256') throw unsupportedMechanism()
  const fields = new Map<string, string>()
  for (const part of authorization.slice(space + 1).split(',')) {
    const eq = part.indexOf('=')
    if (eq < 0) throw fail(`"${part.trim().slice(0, 80)}" is not NAME=VALUE`)
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim())
  }
  const credentialText = fields.get('Credential')
  const signedText = fields.get('SignedHeaders')
  const signature = fields.get('Signature')
  if (credentialText === undefined || signedText === undefined || signature === undefined) throw fail('it needs Credential, SignedHeaders and Signature')
  const credential = parseCredential(credentialText, fail, options.region)
  const signed = parseSignedHeaders(signedText, fail)

  const amzDate = request.headers.get('x-amz-date')?.[0] ?? dateHeaderAsAmz(request.headers.get('date')?.[0])
  const time = amzDate === undefined ? undefined : parseAmzDate(amzDate)
  if (amzDate === undefined || time === undefined) throw new S3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header')
  if (!amzDate.startsWith(credential.date)) throw fail(`the Credential's date ${credential.date} is not the request's (${amzDate})`)
  if (Math.abs(options.now - time) > options.maxClockSkew) throw new S3Error('RequestTimeTooSkewed', `The difference between the request time (${new Date(time).toISOString()}) and the server's time (${new Date(options.now).toISOString()}) is too large.`)

  const payloadHash = request.headers.get('x-amz-content-sha256')?.[0]
  if (payloadHash === undefined) throw new S3Error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256')
  checkPayloadHash(payloadHash)

  const secret = options.secretOf(credential.accessKeyId)
  if (secret === undefined) throw new S3Error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.')
  checkAllAmzSigned(request, signed)
  const key = signingKey(secret, credential.date, credential.region)
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, credential.scope, sha256Hex(canonicalRequest(request, signed, payloadHash))].join('\n')
  if (!sameSignature(signature, sign(key, stringToSign))) {
    throw new S3Error('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.')
  }
  return { accessKeyId: credential.accessKeyId, payloadHash: normalHash(payloadHash), presigned: false, amzDate, scope: credential.scope, signingKey: key, signature }
}

function verifyPresigned(request: SignableRequest, options: VerifyOptions): Authenticated {
  const fail: Fail = (message, fields) => new S3Error('AuthorizationQueryParametersError', message, { fields: fields ?? [] })
  const param = (name: string): string => {
    const found = request.query.filter(([n]) => n === name)
    if (found.length !== 1) throw fail(`the query must have one ${name} parameter`)
    return found[0]![1]
  }
  const algorithm = param('X-Amz-Algorithm')
  if (algorithm !== 'AWS4-HMAC-SHA256') throw fail(`X-Amz-Algorithm only supports "AWS4-HMAC-SHA256", got "${algorithm.slice(0, 40)}"`)
  const credential = parseCredential(param('X-Amz-Credential'), fail, options.region)
  const signed = parseSignedHeaders(param('X-Amz-SignedHeaders'), fail)
  const signature = param('X-Amz-Signature')
  const amzDate = param('X-Amz-Date')
  const time = parseAmzDate(amzDate)
  if (time === undefined) throw fail('X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'"')
  if (!amzDate.startsWith(credential.date)) throw fail(`the Credential's date ${credential.date} is not X-Amz-Date's (${amzDate})`)
  const expiresText = param('X-Amz-Expires')
  const expires = /^\d{1,7}$/.test(expiresText) ? Number(expiresText) : NaN
  if (!(expires >= 1)) throw fail('X-Amz-Expires must be a whole number of seconds, at least 1')
  if (expires > MAX_PRESIGNED_EXPIRY_SECONDS) throw fail('X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds')
  if (time - options.now > options.maxClockSkew) throw new S3Error('AccessDenied', 'Request is not valid yet')
  if (options.now > time + expires * 1000) throw new S3Error('AccessDenied', 'Request has expired')

  const payloadHash = request.query.find(([n]) => n === 'X-Amz-Content-Sha256')?.[1] ?? request.headers.get('x-amz-content-sha256')?.[0] ?? UNSIGNED_PAYLOAD
  checkPayloadHash(payloadHash)
  const secret = options.secretOf(credential.accessKeyId)
  if (secret === undefined) throw new S3Error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.')
  checkAllAmzSigned(request, signed)
  const key = signingKey(secret, credential.date, credential.region)
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, credential.scope, sha256Hex(canonicalRequest(request, signed, payloadHash))].join('\n')
  if (!sameSignature(signature, sign(key, stringToSign))) {
    throw new S3Error('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.')
  }
  return { accessKeyId: credential.accessKeyId, payloadHash: normalHash(payloadHash), presigned: true, amzDate, scope: credential.scope, signingKey: key, signature }
}

/** A hex SHA-256 in lowercase; a payload marker as it is. */
const normalHash = (value: string): string => (/^[0-9a-fA-F]{64}$/.test(value) ? value.toLowerCase() : value)

function checkPayloadHash(value: string): void {
  if (/^[0-9a-fA-F]{64}$/.test(value) || value === UNSIGNED_PAYLOAD || STREAMING_FORMS.has(value)) return
  if (value.startsWith('STREAMING-')) throw new S3Error('NotImplemented', `x-amz-content-sha256 ${value.slice(0, 60)} is not supported; use STREAMING-AWS4-HMAC-SHA256-PAYLOAD or STREAMING-UNSIGNED-PAYLOAD-TRAILER`)
  throw new S3Error('InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER), STREAMING-UNSIGNED-PAYLOAD-TRAILER, or a valid sha256 value.')
}

/** A `Date` header (RFC 1123) as `YYYYMMDDTHHMMSSZ`. */
function dateHeaderAsAmz(value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  const ms = Date.parse(value)
  return Number.isNaN(ms) ? undefined : formatAmzDate(ms)
}
