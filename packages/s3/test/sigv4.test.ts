// SigV4 against the worked examples of AWS's S3 documentation (same keys, dates and requests).
import { describe, expect, it } from 'vitest'
import { AwsChunkedDecoder } from '../src/chunked.js'
import type { S3Error } from '../src/errors.js'
import { canonicalQuery, parseQuery, uriEncode, verifySignature, type SignableRequest } from '../src/sigv4.js'

const accessKeyId = 'AKIAIOSFODNN7EXAMPLE'
const secretAccessKey = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
const now = Date.UTC(2013, 4, 24, 0, 5)
const options = { secretOf: (id: string) => (id === accessKeyId ? secretAccessKey : undefined), region: 'us-east-1', now, maxClockSkew: 15 * 60_000 }
const credential = `${accessKeyId}/20130524/us-east-1/s3/aws4_request`

function request(method: string, url: string, headers: Record<string, string>): SignableRequest {
  const q = url.indexOf('?')
  return {
    method,
    rawPath: q < 0 ? url : url.slice(0, q),
    query: parseQuery(q < 0 ? '' : url.slice(q + 1)),
    headers: new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), [v]])),
  }
}

const getObject = (signature: string, extra: Record<string, string> = {}): SignableRequest =>
  request('GET', '/test.txt', {
    host: 'examplebucket.s3.amazonaws.com',
    range: 'bytes=0-9',
    'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    'x-amz-date': '20130524T000000Z',
    authorization: `AWS4-HMAC-SHA256 Credential=${credential},SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=${signature}`,
    ...extra,
  })

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn()
  } catch (err) {
    return (err as S3Error).code
  }
  return undefined
}

describe('SigV4', () => {
  it('verifies the GET Object example', () => {
    const auth = verifySignature(getObject('f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41'), options)
    expect(auth.accessKeyId).toBe(accessKeyId)
    expect(auth.presigned).toBe(false)
  })

  it('verifies the PUT Object example, a key with a $ signed in its encoded form', () => {
    const req = request('PUT', '/test%24file.text', {
      host: 'examplebucket.s3.amazonaws.com',
      date: 'Fri, 24 May 2013 00:00:00 GMT',
      'x-amz-date': '20130524T000000Z',
      'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      'x-amz-content-sha256': '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072',
      authorization: `AWS4-HMAC-SHA256 Credential=${credential},SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd`,
    })
    expect(verifySignature(req, options).payloadHash).toBe('44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072')
    // The same key sent unencoded signs the same.
    expect(verifySignature({ ...req, rawPath: '/test$file.text' }, options).accessKeyId).toBe(accessKeyId)
  })

  it('verifies the list-objects example (a sorted, encoded query)', () => {
    const req = request('GET', '/?max-keys=2&prefix=J', {
      host: 'examplebucket.s3.amazonaws.com',
      'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      'x-amz-date': '20130524T000000Z',
      authorization: `AWS4-HMAC-SHA256 Credential=${credential},SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7`,
    })
    expect(verifySignature(req, options).accessKeyId).toBe(accessKeyId)
  })

  it('verifies the presigned URL example, and refuses it once expired', () => {
    const url =
      '/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404'
    const req = request('GET', url, { host: 'examplebucket.s3.amazonaws.com' })
    expect(verifySignature(req, options).presigned).toBe(true)
    expect(codeOf(() => verifySignature(req, { ...options, now: Date.UTC(2013, 4, 25, 0, 0, 1) }))).toBe('AccessDenied')
    const tooLong = url.replace('X-Amz-Expires=86400', 'X-Amz-Expires=604801')
    expect(codeOf(() => verifySignature(request('GET', tooLong, { host: 'examplebucket.s3.amazonaws.com' }), options))).toBe('AuthorizationQueryParametersError')
  })

  it('refuses a changed header, a wrong signature, an unknown key, a skewed clock and an unsigned x-amz header', () => {
    const good = 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41'
    expect(codeOf(() => verifySignature(getObject(good, { range: 'bytes=0-10' }), options))).toBe('SignatureDoesNotMatch')
    expect(codeOf(() => verifySignature(getObject(good.replace(/^f/, 'e')), options))).toBe('SignatureDoesNotMatch')
    expect(codeOf(() => verifySignature(getObject(good), { ...options, secretOf: () => undefined }))).toBe('InvalidAccessKeyId')
    expect(codeOf(() => verifySignature(getObject(good), { ...options, now: now + 3600_000 }))).toBe('RequestTimeTooSkewed')
    expect(codeOf(() => verifySignature(getObject(good), { ...options, region: 'eu-west-1' }))).toBe('AuthorizationHeaderMalformed')
    expect(codeOf(() => verifySignature(getObject(good, { 'x-amz-copy-source': '/other/key' }), options))).toBe('AccessDenied')
    const anonymous = request('GET', '/test.txt', { host: 'examplebucket.s3.amazonaws.com' })
    expect(codeOf(() => verifySignature(anonymous, options))).toBe('AccessDenied')
  })

  it('encodes and sorts the query as S3 does', () => {
    expect(uriEncode("a b+c/d~e!'()*", false)).toBe('a%20b%2Bc%2Fd~e%21%27%28%29%2A')
    expect(uriEncode('a b/c', true)).toBe('a%20b/c')
    expect(canonicalQuery(parseQuery('prefix=a+b&uploads&delimiter=%2F&X-Amz-Signature=x'))).toBe('delimiter=%2F&prefix=a%20b&uploads=')
  })
})

describe('aws-chunked with signed chunks', () => {
  // AWS's example: 65 KiB of 'a' in a 64 KiB and a 1 KiB chunk, then the final chunk.
  const seed = '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9'
  const signatures = ['ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648', '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497', 'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9']
  const put = request('PUT', '/examplebucket/chunkObject.txt', {
    host: 's3.amazonaws.com',
    'x-amz-date': '20130524T000000Z',
    'x-amz-storage-class': 'REDUCED_REDUNDANCY',
    'content-encoding': 'aws-chunked',
    'x-amz-decoded-content-length': '66560',
    'content-length': '66824',
    'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
    authorization: `AWS4-HMAC-SHA256 Credential=${credential},SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=${seed}`,
  })
  const body = (sigs: string[], data = [Buffer.alloc(65536, 'a'), Buffer.alloc(1024, 'a')]): Buffer =>
    Buffer.concat([
      Buffer.from(`10000;chunk-signature=${sigs[0]}\r\n`), data[0]!, Buffer.from('\r\n'),
      Buffer.from(`400;chunk-signature=${sigs[1]}\r\n`), data[1]!, Buffer.from('\r\n'),
      Buffer.from(`0;chunk-signature=${sigs[2]}\r\n\r\n`),
    ])
  const decoder = () => {
    const auth = verifySignature(put, options)
    return new AwsChunkedDecoder({ trailers: [], decodedLength: 66560, signing: { key: auth.signingKey, amzDate: auth.amzDate, scope: auth.scope, seedSignature: auth.signature } })
  }
  /** Feeds `bytes` in pieces of `step` bytes, so that frames split anywhere. */
  async function decode(bytes: Buffer, step: number): Promise<Buffer> {
    const source = (async function* () {
      for (let i = 0; i < bytes.length; i += step) {
        await Promise.resolve()
        yield bytes.subarray(i, i + step)
      }
    })()
    const out: Buffer[] = []
    for await (const piece of decoder().decode(source)) out.push(piece)
    return Buffer.concat(out)
  }

  it('decodes the example and checks every chunk signature, however the bytes are split', async () => {
    expect(body(signatures).length).toBe(66824)
    for (const step of [1, 7, 4096, 66824]) expect((await decode(body(signatures), step)).equals(Buffer.alloc(66560, 'a'))).toBe(true)
  })

  it('refuses a tampered chunk, a reordered chain and a bad final signature', async () => {
    const tampered = [Buffer.alloc(65536, 'a'), Buffer.alloc(1024, 'a')]
    tampered[1]![500] = 0x62
    await expect(decode(body(signatures, tampered), 4096)).rejects.toMatchObject({ code: 'SignatureDoesNotMatch' })
    await expect(decode(body([signatures[1]!, signatures[0]!, signatures[2]!]), 4096)).rejects.toMatchObject({ code: 'SignatureDoesNotMatch' })
    await expect(decode(body([signatures[0]!, signatures[1]!, seed]), 4096)).rejects.toMatchObject({ code: 'SignatureDoesNotMatch' })
  })

  it('refuses a body cut short or longer than declared', async () => {
    const whole = body(signatures)
    await expect(decode(whole.subarray(0, 70_000 - 4000), 4096)).rejects.toMatchObject({ code: 'IncompleteBody' })
    await expect(decode(Buffer.concat([whole, Buffer.from('junk')]), 4096)).rejects.toMatchObject({ code: 'InvalidRequest' })
  })
})
