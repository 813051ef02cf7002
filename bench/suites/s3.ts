// @dcas/s3: an object PUT and then GET through the S3 gateway of `dcas serve --s3` (the built program,
// a process of its own with the flags the `dcas` command gives it, one node, real disk) with @aws-sdk/client-s3 as the client — a streamed
// upload with its CRC32 trailer, as the SDK sends a stream — beside, in the same rounds:
// - the same object through the daemon's own HTTP API (what the gateway's S3 work costs on top);
// - the ceiling: raw node:http over loopback to a server process that discards the PUT body and
//   answers the GET from memory (what HTTP alone costs);
// and `restic backup` of a tree of the same size to dcas over S3 beside restic to a local directory
// (skipped, with a note, when restic is not installed). Each round (a warm-up, then the recorded
// runs) runs them in turn, the order turning with the round. Peak RSS: the daemon's (from
// /v1/status), the raw server's, and this process's (the client).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer as createHttpServer, request, type IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { CreateBucketCommand, DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { NODE_FLAGS } from '@dcas/server'
import { generateData } from '@dcas/server/testing'
import { bytesLabel, inTurn, MiB, peakRssMiB, record, rounds, seconds, size } from '../lib.js'

const OBJECT = size(256 * MiB, 16 * MiB)
const TREE_FILES = 64
const label = bytesLabel(OBJECT)
const BIN = fileURLToPath(new URL('../../packages/cli/dist/bin.js', import.meta.url))
const CEILING_PUT = `ceiling: node:http PUT ${label} over loopback to a discarding server`
const CEILING_GET = `ceiling: node:http GET ${label} over loopback from memory`
const RESTIC_LOCAL = `ceiling: restic backup of a ${label} tree to a local directory`

// ---- the raw HTTP server, in a child process (`s3.ts --raw-server`) ------------------------
if (process.argv.includes('--raw-server')) {
  const block = Buffer.alloc(MiB, 0x5a)
  const server = createHttpServer((req, res) => {
    if (req.method === 'PUT') {
      let n = 0
      req.on('data', (piece: Buffer) => (n += piece.length))
      req.on('end', () => res.end(JSON.stringify({ size: n })))
      return
    }
    if (req.url === '/rss') {
      res.end(JSON.stringify({ maxRss: process.resourceUsage().maxRSS * 1024 }))
      return
    }
    const total = Number(req.url?.slice(1))
    res.writeHead(200, { 'content-length': String(total) })
    let left = total
    const write = (): void => {
      while (left > 0) {
        const piece = left >= block.length ? block : block.subarray(0, left)
        left -= piece.length
        if (!res.write(piece)) return void res.once('drain', write)
      }
      res.end()
    }
    write()
  })
  server.listen(0, '127.0.0.1', () => {
    const address = server.address()
    process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' && address !== null ? address.port : 0 })}\n`)
  })
  process.on('SIGTERM', () => server.close(() => process.exit(0)))
} else {
  await main()
}

/** The first line a child prints that `match` accepts, parsed. */
function firstLine(child: ChildProcess, match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buffered = ''
    child.stdout!.on('data', (b: Buffer) => {
      buffered += b.toString()
      for (;;) {
        const i = buffered.indexOf('\n')
        if (i < 0) return
        const text = buffered.slice(0, i)
        buffered = buffered.slice(i + 1)
        try {
          const line = JSON.parse(text) as Record<string, unknown>
          if (match(line)) resolve(line)
        } catch {
          // not JSON
        }
      }
    })
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before it was ready`)))
  })
}

function call(base: string, method: string, path: string, headers: Record<string, string>, body?: AsyncIterable<Uint8Array>): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method, headers })
    req.once('response', resolve)
    req.once('error', reject)
    if (body === undefined) req.end()
    else pipeline(body, req).catch(reject)
  })
}

async function drain(body: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0
  for await (const piece of body) n += piece.length
  return n
}

async function text(res: IncomingMessage): Promise<string> {
  let s = ''
  for await (const piece of res) s += String(piece)
  if (res.statusCode !== undefined && res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}: ${s}`)
  return s
}

/** Runs a command to its end; throws with its output on a non-zero exit. */
function run(cmd: string, args: string[], env: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (b: Buffer) => (err += b.toString()))
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.slice(-2000)}`))))
  })
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'dcas-bench-s3-'))
  const children: ChildProcess[] = []
  let client: S3Client | undefined
  try {
    const raw = spawn(process.execPath, [...NODE_FLAGS, '--import', 'tsx', fileURLToPath(import.meta.url), '--raw-server'], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(raw)
    const rawBase = `http://127.0.0.1:${String((await firstLine(raw, (l) => typeof l.port === 'number')).port)}`

    // The daemon with its S3 gateway: `dcas init`, then `dcas serve --s3` until its `ready` line.
    const root = join(dir, 'node')
    const init = spawn(process.execPath, [BIN, 'init', '--root', root, '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--write-quorum', '0'], { stdio: 'ignore' })
    const initCode = await new Promise((resolve) => init.once('exit', resolve))
    if (initCode !== 0) throw new Error(`dcas init exited ${String(initCode)}`)
    const daemon = spawn(process.execPath, [...NODE_FLAGS, BIN, 'serve', '--root', root, '--s3', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(daemon)
    await firstLine(daemon, (l) => l.msg === 'ready')
    const api = JSON.parse(await readFile(join(root, 'api.json'), 'utf8')) as { url: string; token: string; s3: { url: string; region: string; accessKeyId: string; secretAccessKey: string } }
    const auth = { authorization: `Bearer ${api.token}` }
    client = new S3Client({ endpoint: api.s3.url, region: api.s3.region, credentials: api.s3, forcePathStyle: true })
    const s3 = client
    await s3.send(new CreateBucketCommand({ Bucket: 'bench' }))

    // The tree restic backs up, written once.
    const resticFound = spawnSync('restic', ['version'], { stdio: 'ignore' }).status === 0
    if (!resticFound) console.log('restic is not installed: its benchmarks are skipped (apt-get install restic)')
    const tree = join(dir, 'tree')
    if (resticFound) {
      for (let i = 0; i < TREE_FILES; i++) {
        await mkdir(join(tree, `d${i % 8}`), { recursive: true })
        await pipeline(generateData(OBJECT / TREE_FILES, `tree-${i}`), createWriteStream(join(tree, `d${i % 8}`, `f${i}.bin`)))
      }
    }
    const resticEnv = { RESTIC_PASSWORD: 'bench', AWS_ACCESS_KEY_ID: api.s3.accessKeyId, AWS_SECRET_ACCESS_KEY: api.s3.secretAccessKey, RESTIC_CACHE_DIR: join(dir, 'restic-cache') }
    const backup = async (repository: string): Promise<number> => {
      await run('restic', ['init'], { ...resticEnv, RESTIC_REPOSITORY: repository })
      return seconds(() => run('restic', ['backup', '--host', 'bench', tree], { ...resticEnv, RESTIC_REPOSITORY: repository }))
    }

    const length = { 'content-length': String(OBJECT) }
    const mbps = (secs: number): number => OBJECT / 1e6 / secs
    for (const round of rounds()) {
      const name = `${round.index}`
      const subjects: Array<() => Promise<number[]>> = [
        async () => [
          await seconds(async () => text(await call(rawBase, 'PUT', '/put', length, generateData(OBJECT, `raw-${name}`)))),
          await seconds(async () => {
            if ((await drain(await call(rawBase, 'GET', `/${OBJECT}`, {}))) !== OBJECT) throw new Error('short raw GET')
          }),
        ],
        async () => [
          await seconds(async () => text(await call(api.url, 'PUT', `/v1/objects/http-${name}`, { ...auth, ...length }, generateData(OBJECT, `http-${name}`)))),
          await seconds(async () => {
            if ((await drain(await call(api.url, 'GET', `/v1/objects/http-${name}`, auth))) !== OBJECT) throw new Error('short GET')
          }),
        ],
        async () => [
          await seconds(() => s3.send(new PutObjectCommand({ Bucket: 'bench', Key: `s3-${name}`, Body: Readable.from(generateData(OBJECT, `s3-${name}`)), ContentLength: OBJECT }))),
          await seconds(async () => {
            const got = await s3.send(new GetObjectCommand({ Bucket: 'bench', Key: `s3-${name}` }))
            if ((await drain(got.Body as Readable)) !== OBJECT) throw new Error('short S3 GET')
          }),
        ],
      ]
      if (resticFound) {
        subjects.push(
          async () => [await backup(`s3:${api.s3.url}/bench/restic-${name}`)],
          async () => [await backup(join(dir, `restic-local-${name}`))],
        )
      }
      const [rawTimes, httpTimes, s3Times, resticS3, resticLocal] = await inTurn(round, subjects)
      const daemonRss = (JSON.parse(await text(await call(api.url, 'GET', '/v1/status', auth))) as { memory: { maxRss: number } }).memory.maxRss / MiB
      const rawRss = (JSON.parse(await text(await call(rawBase, 'GET', '/rss', {}))) as { maxRss: number }).maxRss / MiB
      const here = peakRssMiB()
      const processes = ['server', 'client']
      record(round, { name: CEILING_PUT, unit: 'MB/s', value: mbps(rawTimes![0]!), peakRssMiB: [rawRss, here], processes, isCeiling: true })
      record(round, { name: CEILING_GET, unit: 'MB/s', value: mbps(rawTimes![1]!), peakRssMiB: [rawRss, here], processes, isCeiling: true })
      record(round, { name: `s3: PUT ${label} through the S3 gateway (SDK stream, CRC32 trailer)`, unit: 'MB/s', value: mbps(s3Times![0]!), peakRssMiB: [daemonRss, here], processes: ['daemon', 'client'], ceiling: CEILING_PUT })
      record(round, { name: `s3: GET ${label} through the S3 gateway`, unit: 'MB/s', value: mbps(s3Times![1]!), peakRssMiB: [daemonRss, here], processes: ['daemon', 'client'], ceiling: CEILING_GET })
      record(round, { name: `s3: PUT ${label} through the daemon's HTTP API (for comparison)`, unit: 'MB/s', value: mbps(httpTimes![0]!), peakRssMiB: [daemonRss, here], processes: ['daemon', 'client'], ceiling: CEILING_PUT })
      record(round, { name: `s3: GET ${label} through the daemon's HTTP API (for comparison)`, unit: 'MB/s', value: mbps(httpTimes![1]!), peakRssMiB: [daemonRss, here], processes: ['daemon', 'client'], ceiling: CEILING_GET })
      if (resticS3 !== undefined && resticLocal !== undefined) {
        record(round, { name: RESTIC_LOCAL, unit: 'MB/s', value: mbps(resticLocal[0]!), peakRssMiB: [], isCeiling: true })
        record(round, { name: `s3: restic backup of a ${label} tree to dcas over S3`, unit: 'MB/s', value: mbps(resticS3[0]!), peakRssMiB: [daemonRss], processes: ['daemon'], ceiling: RESTIC_LOCAL })
      }
      // Each round's objects go, so the disk holds one round at a time.
      await text(await call(api.url, 'DELETE', `/v1/objects/http-${name}`, auth))
      await s3.send(new DeleteObjectCommand({ Bucket: 'bench', Key: `s3-${name}` }))
      for (;;) {
        const page = await s3.send(new ListObjectsV2Command({ Bucket: 'bench', Prefix: `restic-${name}/` }))
        const keys = (page.Contents ?? []).map((c) => ({ Key: c.Key! }))
        if (keys.length === 0) break
        await s3.send(new DeleteObjectsCommand({ Bucket: 'bench', Delete: { Objects: keys, Quiet: true } }))
      }
      await rm(join(dir, `restic-local-${name}`), { recursive: true, force: true })
    }
  } finally {
    client?.destroy()
    for (const child of children) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    }
    await rm(dir, { recursive: true, force: true })
  }
}
