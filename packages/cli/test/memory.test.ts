// A big object through the daemon's HTTP API keeps the daemon's memory flat: the PUT body
// streams into the store and the store streams into the GET response. The daemon is a child
// process (`dcas serve`), so its peak RSS is its own. Default 128 MiB; `pnpm test:memory` runs 1 GiB.
import { createHash } from 'node:crypto'
import { request, type IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { dataDigest, generateData } from '@dcas/server/testing'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { initNode, type NodeStatus } from '../src/index.js'
import { serve, stopAll, tempDir, type ServeHandle } from './helpers.js'

const MiB = 1024 * 1024
const SIZE = Number(process.env.DCAS_CLI_MEMORY_MIB ?? 128) * MiB
// What the daemon may grow by, whatever the object's size: a few chunks in flight each way, buffers, GC slack.
const GROWTH_LIMIT = 160 * MiB

let dir: { path: string; cleanup: () => Promise<void> }
let node: ServeHandle

beforeEach(async () => {
  dir = await tempDir()
  const root = join(dir.path, 'node')
  // A node alone: puts are stored locally only (write quorum 0).
  await initNode({ root, listen: '127.0.0.1:0', http: '127.0.0.1:0', writeQuorum: 0 })
  node = await serve(root)
})

afterEach(async () => {
  await stopAll()
  await dir.cleanup()
})

function call(method: string, path: string, body?: AsyncIterable<Uint8Array>, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(`${node.api.url}${path}`, { method, headers: { authorization: `Bearer ${node.api.token}`, ...headers } })
    req.once('response', resolve)
    req.once('error', reject)
    if (body === undefined) req.end()
    else pipeline(body, req).catch(reject)
  })
}

async function json<T>(res: IncomingMessage): Promise<T> {
  let text = ''
  for await (const piece of res) text += String(piece)
  return JSON.parse(text) as T
}

const peakRss = async (): Promise<number> => (await json<NodeStatus>(await call('GET', '/v1/status'))).memory.maxRss

describe('daemon memory', () => {
  it(`stays flat while a ${SIZE / MiB} MiB object is PUT and then GET through the HTTP API`, async () => {
    // Warm up (JIT, pools) with a small object, then take the baseline.
    await json(await call('PUT', '/v1/objects/warm', generateData(4 * MiB, 'warm'), { 'content-length': String(4 * MiB) }))
    for await (const _ of await call('GET', '/v1/objects/warm')) void _
    const baseline = await peakRss()

    const stored = await json<{ size: number; sha256: string }>(await call('PUT', '/v1/objects/huge', generateData(SIZE, 'huge'), { 'content-length': String(SIZE) }))
    const expected = await dataDigest(SIZE, 'huge')
    expect(stored).toMatchObject({ size: SIZE, sha256: expected })

    const res = await call('GET', '/v1/objects/huge')
    expect(res.statusCode).toBe(200)
    const hash = createHash('sha256')
    let received = 0
    for await (const piece of res as AsyncIterable<Buffer>) {
      hash.update(piece)
      received += piece.length
    }
    expect(received).toBe(SIZE)
    expect(hash.digest('hex')).toBe(expected)

    const peak = await peakRss()
    console.log(`daemon peak RSS: ${Math.round(baseline / MiB)} MiB before, ${Math.round(peak / MiB)} MiB after a ${SIZE / MiB} MiB PUT and GET`)
    expect(peak - baseline).toBeLessThan(GROWTH_LIMIT)
    expect(peak - baseline).toBeLessThan(SIZE / 2)
  }, 60_000 + (SIZE / MiB) * 500)
})
