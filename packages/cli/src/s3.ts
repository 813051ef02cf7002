// The node's S3 gateway: its access key in `DIR/identity/s3-credentials.json` (made by `dcas init`,
// or by the first `dcas serve --s3` of an older node), the gateway beside the node, and the client
// settings `dcas s3 credentials` prints.
import { readFile } from 'node:fs/promises'
import { createS3Gateway, generateCredentials, type S3Credentials, type S3Gateway } from '@dcas/s3'
import type { Server } from '@dcas/server'
import type { ApiFile } from './api-file.js'
import { paths } from './config.js'
import { ConfigError, ListenError, codeOf, messageOf } from './errors.js'
import { writeFileAtomic } from './files.js'
import type { Logger } from './logger.js'

/** The region the gateway signs for: what restic, rclone and the AWS CLI assume when told nothing. */
export const S3_REGION = 'us-east-1'

/** The node's S3 access key, or `undefined` when it has none yet. */
export async function readS3Credentials(root: string): Promise<S3Credentials | undefined> {
  const file = paths(root).s3Credentials
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return undefined
    throw err
  }
  try {
    const parsed = JSON.parse(text) as Partial<S3Credentials>
    if (typeof parsed.accessKeyId === 'string' && typeof parsed.secretAccessKey === 'string') return { accessKeyId: parsed.accessKeyId, secretAccessKey: parsed.secretAccessKey }
  } catch (err) {
    throw new ConfigError(`${file} is not valid JSON: ${messageOf(err)}`, { cause: err, hint: 'move it away: dcas serve --s3 makes a new access key' })
  }
  throw new ConfigError(`${file} must hold "accessKeyId" and "secretAccessKey" strings`, { hint: 'move it away: dcas serve --s3 makes a new access key' })
}

/** Makes a new S3 access key in `DIR/identity/` (mode 0600); never replaces one. */
export async function createS3Credentials(root: string): Promise<S3Credentials> {
  const credentials = generateCredentials()
  await writeFileAtomic(paths(root).s3Credentials, `${JSON.stringify(credentials, null, 2)}\n`, { exclusive: true })
  return credentials
}

/** Starts the S3 gateway over `server` on `address`; resolves to it and what api.json says of it. */
export async function startS3(root: string, server: Server, address: string, logger: Logger): Promise<{ gateway: S3Gateway; entry: NonNullable<ApiFile['s3']> }> {
  const credentials = (await readS3Credentials(root)) ?? (await createS3Credentials(root))
  const gateway = createS3Gateway({ server, credentials, region: S3_REGION, logger })
  try {
    const url = await gateway.listen(address)
    return { gateway, entry: { url, region: S3_REGION, ...credentials } }
  } catch (err) {
    await gateway.close()
    if (codeOf(err) === 'ERR_INVALID_OPTIONS') throw new ListenError(`--s3 ${messageOf(err)}`, { cause: err, hint: 'use --s3 HOST:PORT, e.g. --s3 127.0.0.1:9000' })
    throw new ListenError(`cannot serve S3 on ${address}: ${messageOf(err)}`, { cause: err, hint: 'pick another port with --s3 HOST:PORT (0 picks a free one)' })
  }
}

/** What `dcas s3 credentials` prints: the endpoint and key, and how restic, rclone and the AWS CLI use them. */
export function s3Instructions(entry: NonNullable<ApiFile['s3']>): string[] {
  const { url, region, accessKeyId, secretAccessKey } = entry
  return [
    `endpoint           ${url}`,
    `region             ${region}`,
    `access key id      ${accessKeyId}`,
    `secret access key  ${secretAccessKey}`,
    '',
    'restic:',
    `  export AWS_ACCESS_KEY_ID=${accessKeyId} AWS_SECRET_ACCESS_KEY=${secretAccessKey}`,
    `  restic -r s3:${url}/backups init`,
    '',
    'rclone (rclone.conf):',
    '  [dcas]',
    '  type = s3',
    '  provider = Other',
    `  endpoint = ${url}`,
    `  region = ${region}`,
    `  access_key_id = ${accessKeyId}`,
    `  secret_access_key = ${secretAccessKey}`,
    '  force_path_style = true',
    '',
    'AWS CLI:',
    `  export AWS_ACCESS_KEY_ID=${accessKeyId} AWS_SECRET_ACCESS_KEY=${secretAccessKey} AWS_DEFAULT_REGION=${region}`,
    `  aws --endpoint-url ${url} s3 mb s3://my-bucket`,
  ]
}
