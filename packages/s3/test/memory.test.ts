// A big object through the gateway keeps the gateway's memory flat: the PUT body streams through its
// checks into the store, and the store into the GET response. The gateway and its server run in a
// child process, whose peak RSS (VmHWM, Linux) is its own. `DCAS_S3_MEMORY_MIB` sets the size (256 MiB).
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { dataDigest, generateData } from '@dcas/server/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { credentials } from './helpers.js'

const MiB = 1024 * 1024
const SIZE = Number(process.env.DCAS_S3_MEMORY_MIB ?? 256) * MiB
// What the gateway's process may grow by, whatever the object's size: chunks in flight each way, buffers, GC slack.
const GROWTH_LIMIT = 96 * MiB

let child: ChildProcess | undefined
let dir: string | undefined

afterEach(async () => {
  if (child !== undefined && child.exitCode === null) {
    const exited = new Promise((resolve) => child!.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
  }
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

/** Peak resident set size of a process, in bytes. */
async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024
}

describe.runIf(process.platform === 'linux')('gateway memory', () => {
  it(`stays flat while a ${SIZE / MiB} MiB object is PUT (streamed, CRC32 trailer) and GET through the gateway`, async () => {
    dir = await mkdtemp(join(tmpdir(), 'dcas-s3-memory-'))
    const proc = spawn(process.execPath, ['--import', 'tsx', new URL('./fixtures/gateway-process.ts', import.meta.url).pathname, dir], { stdio: ['ignore', 'pipe', 'inherit'] })
    child = proc
    const url = await new Promise<string>((resolve, reject) => {
      proc.stdout.once('data', (b: Buffer) => resolve((JSON.parse(b.toString()) as { url: string }).url))
      proc.once('exit', (code) => reject(new Error(`the gateway process exited (${code})`)))
    })
    const s3 = new S3Client({ endpoint: url, region: 'us-east-1', credentials, forcePathStyle: true, maxAttempts: 1 })
    try {
      await s3.send(new CreateBucketCommand({ Bucket: 'mem' }))
      const transfer = async (key: string, size: number): Promise<string> => {
        await s3.send(new PutObjectCommand({ Bucket: 'mem', Key: key, Body: Readable.from(generateData(size, key)), ContentLength: size }))
        const got = await s3.send(new GetObjectCommand({ Bucket: 'mem', Key: key }))
        const hash = createHash('sha256')
        for await (const piece of got.Body as Readable) hash.update(piece as Buffer)
        return hash.digest('hex')
      }
      // Warm up (JIT, pools) with a small object, then take the baseline.
      await transfer('warm', 8 * MiB)
      const baseline = await peakRss(proc.pid!)
      expect(await transfer('huge', SIZE)).toBe(await dataDigest(SIZE, 'huge'))
      const growth = (await peakRss(proc.pid!)) - baseline
      expect(growth, `the gateway's peak RSS grew by ${(growth / MiB).toFixed(0)} MiB for a ${SIZE / MiB} MiB object`).toBeLessThan(GROWTH_LIMIT)
    } finally {
      s3.destroy()
    }
  })
})
