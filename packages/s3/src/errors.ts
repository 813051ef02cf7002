/**
 * Typed errors of `@dcas/s3`. What a client sees is an {@link S3Error}: one of S3's own error
 * codes with its HTTP status, answered as S3's XML `<Error>`. Programs using the package also
 * get `ERR_INVALID_OPTIONS` from {@link createS3Gateway}. Callers test `code`, not `instanceof`.
 */

/** S3's error codes this gateway answers, with their HTTP status. */
export const S3_ERRORS = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  BadDigest: 400,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidDigest: 400,
  InvalidPart: 400,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  InvalidURI: 400,
  KeyTooLongError: 400,
  MalformedXML: 400,
  MaxMessageLengthExceeded: 400,
  MetadataTooLarge: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  MissingRequestBodyError: 400,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NotImplemented: 501,
  PreconditionFailed: 412,
  RequestHeaderSectionTooLarge: 400,
  RequestTimeTooSkewed: 403,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  TooManyUploads: 400,
  XAmzContentSHA256Mismatch: 400,
} as const

/** One of S3's error codes in {@link S3_ERRORS}. */
export type S3ErrorCode = keyof typeof S3_ERRORS

/** Every code `@dcas/s3` raises: S3's, and `ERR_INVALID_OPTIONS` for the gateway's own options. */
export const S3_ERROR_CODES = [...(Object.keys(S3_ERRORS) as S3ErrorCode[]), 'ERR_INVALID_OPTIONS'] as const

/** An S3 error: answered to the client as S3's XML `<Error>` with {@link S3Error.status}. */
export class S3Error extends Error {
  /** S3's error code, e.g. `NoSuchKey`. */
  readonly code: S3ErrorCode
  /** The HTTP status it is answered with. */
  readonly status: number

  /** More elements of the XML `<Error>`, as S3 sends them (e.g. `Region` of `AuthorizationHeaderMalformed`, which s3cmd reads to retry there). */
  readonly fields: ReadonlyArray<readonly [string, string]>

  constructor(code: S3ErrorCode, message: string, options?: ErrorOptions & { fields?: ReadonlyArray<readonly [string, string]> }) {
    super(message, options)
    this.name = 'S3Error'
    this.code = code
    this.status = S3_ERRORS[code]
    this.fields = options?.fields ?? []
  }
}

/** An option of {@link createS3Gateway} is invalid; the message names it. */
export class InvalidOptionsError extends Error {
  readonly code = 'ERR_INVALID_OPTIONS'

  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'InvalidOptionsError'
  }
}

/** The `code` of an error, when it has one. */
export const codeOf = (err: unknown): string | undefined => {
  const code = (err as { code?: unknown } | undefined)?.code
  return typeof code === 'string' ? code : undefined
}

/** The message of anything thrown. */
export const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err))

/** The first {@link S3Error} in `err` or its chain of causes (a store rethrows what its data source threw, maybe wrapped). */
export function s3ErrorIn(err: unknown): S3Error | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof S3Error) return e
  }
  return undefined
}
