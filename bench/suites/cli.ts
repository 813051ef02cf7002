// @dcas/cli: an object PUT and then GET through the `dcas serve` HTTP API (the built binary, a
// process of its own, one node, real disk), beside, in the same rounds:
// - the ceiling: raw node:http over loopback to a server process that discards the PUT body and
//   answers the GET from memory (what HTTP alone costs);
// - @dcas/server's store/read in this process, no HTTP (what the daemon wraps).
// Each round runs the three in turn, the order turning with the round, so that a busy machine
// slows each alike. The client does the same work for all three: it sends generateData() and
// counts what comes back. Peak RSS: the daemon's (from /v1/status), the raw server's, and this
// process's (the client, and the in-process server).
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer as createHttpServer, request, type IncomingMessage } from 'node:http'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { createServer } from '@dcas/server'
import { generateData } from '@dcas/server/testing'
import { emit, GiB, MiB, peakRssMiB, quick, size } from '../lib.js'

const OBJECT = size(GiB, 64 * MiB)
const ROUNDS = 2
const label = quick ? '64 MiB' : '1 GiB'
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

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now()
  await fn()
  return (performance.now() - start) / 1000
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'dcas-bench-cli-'))
  const children: ChildProcess[] = []
  const direct = createServer({ root: join(dir, 'direct') })
  try {
    // The raw server.
    const raw = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--raw-server'], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(raw)
    const rawBase = `http://127.0.0.1:${String((await firstLine(raw, (l) => typeof l.port === 'number')).port)}`

    // The daemon: `dcas init`, then `dcas serve` until its `ready` line.
    const root = join(dir, 'node')
    const init = spawn(process.execPath, [BIN, 'init', '--root', root, '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0'], { stdio: 'ignore' })
    const initCode = await new Promise((resolve) => init.once('exit', resolve))
    if (initCode !== 0) throw new Error(`dcas init exited ${String(initCode)}`)
    const daemon = spawn(process.execPath, [BIN, 'serve', '--root', root], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(daemon)
    await firstLine(daemon, (l) => l.msg === 'ready')
    const api = JSON.parse(await readFile(join(root, 'api.json'), 'utf8')) as { url: string; token: string }
    const auth = { authorization: `Bearer ${api.token}` }

    await direct.start()

    const t = { rawPut: 0, rawGet: 0, putHttp: 0, getHttp: 0, store: 0, read: 0 }
    const length = { 'content-length': String(OBJECT) }
    for (let round = 0; round < ROUNDS; round++) {
      const steps: Array<() => Promise<void>> = [
        async () => {
          t.rawPut += await timed(async () => text(await call(rawBase, 'PUT', '/put', length, generateData(OBJECT, `raw-${round}`))))
          t.rawGet += await timed(async () => {
            if ((await drain(await call(rawBase, 'GET', `/${OBJECT}`, {}))) !== OBJECT) throw new Error('short raw GET')
          })
        },
        async () => {
          t.putHttp += await timed(async () => text(await call(api.url, 'PUT', `/v1/objects/obj-${round}`, { ...auth, ...length }, generateData(OBJECT, `http-${round}`))))
          t.getHttp += await timed(async () => {
            if ((await drain(await call(api.url, 'GET', `/v1/objects/obj-${round}`, auth))) !== OBJECT) throw new Error('short GET')
          })
        },
        async () => {
          t.store += await timed(() => direct.store(`obj-${round}`, generateData(OBJECT, `direct-${round}`)))
          t.read += await timed(async () => {
            let n = 0
            for await (const piece of direct.read(`obj-${round}`)) n += (piece as Buffer).length
            if (n !== OBJECT) throw new Error('short read')
          })
        },
      ]
      for (let k = 0; k < steps.length; k++) await steps[(round + k) % steps.length]!()
    }

    const daemonRss = ((JSON.parse(await text(await call(api.url, 'GET', '/v1/status', auth))) as { memory: { maxRss: number } }).memory.maxRss) / MiB
    const rawRss = (JSON.parse(await text(await call(rawBase, 'GET', '/rss', {}))) as { maxRss: number }).maxRss / MiB
    const here = peakRssMiB()
    const mbps = (seconds: number): number => (OBJECT * ROUNDS) / 1e6 / seconds
    emit({ name: CEILING_PUT, unit: 'MB/s', value: mbps(t.rawPut), peakRssMiB: [rawRss, here], isCeiling: true })
    emit({ name: CEILING_GET, unit: 'MB/s', value: mbps(t.rawGet), peakRssMiB: [rawRss, here], isCeiling: true })
    emit({ name: `cli: PUT ${label} through dcas serve's HTTP API`, unit: 'MB/s', value: mbps(t.putHttp), peakRssMiB: [daemonRss, here], ceiling: CEILING_PUT })
    emit({ name: `cli: GET ${label} through dcas serve's HTTP API`, unit: 'MB/s', value: mbps(t.getHttp), peakRssMiB: [daemonRss, here], ceiling: CEILING_GET })
    emit({ name: `cli: server.store ${label} in process, no HTTP (for comparison)`, unit: 'MB/s', value: mbps(t.store), peakRssMiB: [here], ceiling: CEILING_PUT })
    emit({ name: `cli: server.read ${label} in process, no HTTP (for comparison)`, unit: 'MB/s', value: mbps(t.read), peakRssMiB: [here], ceiling: CEILING_GET })
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
