// @dcas/cli: an object PUT and then GET through the `dcas serve` HTTP API (the built program, a
// process of its own with the flags the `dcas` command gives it, one node, real disk), beside, in
// the same rounds (the raw server with the same flags):
// - the ceiling: raw node:http over loopback to a server process that discards the PUT body and
//   answers the GET from memory (what HTTP alone costs);
// - @dcas/server's store/read in this process, no HTTP (what the daemon wraps).
// Each round (a warm-up, then the recorded runs) runs the three in turn, the order turning with
// the round, so that a busy machine slows each alike. The client does the same work for all three: it sends generateData() and
// counts what comes back. Peak RSS: the daemon's (from /v1/status), the raw server's, and this
// process's (the client, and the in-process server).
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer as createHttpServer, request, type IncomingMessage } from 'node:http'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { createServer, NODE_FLAGS } from '@dcas/server'
import { generateData } from '@dcas/server/testing'
import { bytesLabel, inTurn, MiB, peakRssMiB, record, rounds, seconds, size } from '../lib.js'

// 256 MiB keeps six rounds of three PUT+GET pairs within minutes; the daemon's memory over 1 GiB is a test of @dcas/cli.
const OBJECT = size(256 * MiB, 16 * MiB)
const label = bytesLabel(OBJECT)
const BIN = fileURLToPath(new URL('../../packages/cli/dist/bin.js', import.meta.url))
const CEILING_PUT = `ceiling: node:http PUT ${label} over loopback to a discarding server`
const CEILING_GET = `ceiling: node:http GET ${label} over loopback from memory`

// ---- the raw HTTP server, in a child process (`cli.ts --raw-server`) -----------------------
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

/** The first line a child prints, parsed. */
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

async function drain(res: IncomingMessage): Promise<number> {
  let n = 0
  for await (const piece of res as AsyncIterable<Buffer>) n += piece.length
  return n
}

async function text(res: IncomingMessage): Promise<string> {
  let s = ''
  for await (const piece of res) s += String(piece)
  if (res.statusCode !== undefined && res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}: ${s}`)
  return s
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'dcas-bench-cli-'))
  const children: ChildProcess[] = []
  const direct = createServer({ root: join(dir, 'direct'), writeQuorum: 0 })
  try {
    // The raw server.
    const raw = spawn(process.execPath, [...NODE_FLAGS, '--import', 'tsx', fileURLToPath(import.meta.url), '--raw-server'], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(raw)
    const rawBase = `http://127.0.0.1:${String((await firstLine(raw, (l) => typeof l.port === 'number')).port)}`

    // The daemon: `dcas init`, then `dcas serve` until its `ready` line.
    const root = join(dir, 'node')
    const init = spawn(process.execPath, [BIN, 'init', '--root', root, '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--write-quorum', '0'], { stdio: 'ignore' })
    const initCode = await new Promise((resolve) => init.once('exit', resolve))
    if (initCode !== 0) throw new Error(`dcas init exited ${String(initCode)}`)
    const daemon = spawn(process.execPath, [...NODE_FLAGS, BIN, 'serve', '--root', root], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(daemon)
    await firstLine(daemon, (l) => l.msg === 'ready')
    const api = JSON.parse(await readFile(join(root, 'api.json'), 'utf8')) as { url: string; token: string }
    const auth = { authorization: `Bearer ${api.token}` }

    await direct.start()

    const length = { 'content-length': String(OBJECT) }
    const mbps = (secs: number): number => OBJECT / 1e6 / secs
    for (const round of rounds()) {
      const name = `${round.index}`
      const [rawTimes, httpTimes, directTimes] = await inTurn(round, [
        async () => [
          await seconds(async () => text(await call(rawBase, 'PUT', '/put', length, generateData(OBJECT, `raw-${name}`)))),
          await seconds(async () => {
            if ((await drain(await call(rawBase, 'GET', `/${OBJECT}`, {}))) !== OBJECT) throw new Error('short raw GET')
          }),
        ],
        async () => [
          await seconds(async () => text(await call(api.url, 'PUT', `/v1/objects/obj-${name}`, { ...auth, ...length }, generateData(OBJECT, `http-${name}`)))),
          await seconds(async () => {
            if ((await drain(await call(api.url, 'GET', `/v1/objects/obj-${name}`, auth))) !== OBJECT) throw new Error('short GET')
          }),
        ],
        async () => [
          await seconds(() => direct.store(`obj-${name}`, generateData(OBJECT, `direct-${name}`))),
          await seconds(async () => {
            let n = 0
            for await (const piece of direct.read(`obj-${name}`)) n += (piece as Buffer).length
            if (n !== OBJECT) throw new Error('short read')
          }),
        ],
      ])
      const daemonRss = (JSON.parse(await text(await call(api.url, 'GET', '/v1/status', auth))) as { memory: { maxRss: number } }).memory.maxRss / MiB
      const rawRss = (JSON.parse(await text(await call(rawBase, 'GET', '/rss', {}))) as { maxRss: number }).maxRss / MiB
      const here = peakRssMiB()
      const processes = ['server', 'client']
      record(round, { name: CEILING_PUT, unit: 'MB/s', value: mbps(rawTimes![0]!), peakRssMiB: [rawRss, here], processes, isCeiling: true })
      record(round, { name: CEILING_GET, unit: 'MB/s', value: mbps(rawTimes![1]!), peakRssMiB: [rawRss, here], processes, isCeiling: true })
      record(round, { name: `cli: PUT ${label} through dcas serve's HTTP API`, unit: 'MB/s', value: mbps(httpTimes![0]!), peakRssMiB: [daemonRss, here], processes: ['daemon', 'client'], ceiling: CEILING_PUT })
      record(round, { name: `cli: GET ${label} through dcas serve's HTTP API`, unit: 'MB/s', value: mbps(httpTimes![1]!), peakRssMiB: [daemonRss, here], processes: ['daemon', 'client'], ceiling: CEILING_GET })
      record(round, { name: `cli: server.store ${label} in process, no HTTP (for comparison)`, unit: 'MB/s', value: mbps(directTimes![0]!), peakRssMiB: [here], ceiling: CEILING_PUT })
      record(round, { name: `cli: server.read ${label} in process, no HTTP (for comparison)`, unit: 'MB/s', value: mbps(directTimes![1]!), peakRssMiB: [here], ceiling: CEILING_GET })
      // Each round's objects go, so the disk holds one round at a time.
      await text(await call(api.url, 'DELETE', `/v1/objects/obj-${name}`, auth))
      await direct.delete(`obj-${name}`)
    }
  } finally {
    await direct.close().catch(() => {})
    for (const child of children) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    }
    await rm(dir, { recursive: true, force: true })
  }
}
