// `DIR/api.json`: how the commands find a running node.
import { readFile } from 'node:fs/promises'
import { paths } from './config.js'

/** What `dcas serve` writes to `DIR/api.json` (mode 0600) so other commands find the node. */
export interface ApiFile {
  /** `http://127.0.0.1:PORT` */
  url: string
  /** The bearer token of this run. */
  token: string
  pid: number
  nodeId: string
  /** Where the node listens for peers. */
  address: string
  startedAt: number
  /** The S3 gateway, when `dcas serve --s3` runs it: its URL, region and access key. */
  s3?: { url: string; region: string; accessKeyId: string; secretAccessKey: string }
}

/** Reads `DIR/api.json`; `undefined` when there is none or it does not parse. */
export async function readApiFile(root: string): Promise<ApiFile | undefined> {
  try {
    const parsed = JSON.parse(await readFile(paths(root).api, 'utf8')) as Partial<ApiFile>
    if (typeof parsed.url !== 'string' || typeof parsed.token !== 'string') return undefined
    return parsed as ApiFile
  } catch {
    return undefined
  }
}
