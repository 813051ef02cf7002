import { createServer, type Server as HttpServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { connect, initNode, startDaemon, type Daemon, type DcasClient } from '../src/index.js'
import { sha256, tempDir } from './helpers.js'

let dir: { path: string; cleanup: () => Promise<void> }

beforeEach(async () => {
  dir = await tempDir()
})

afterEach(async () => {
  await dir.cleanup()
})

const codeOf = (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => undefined,
    (err: { code?: string }) => err.code,
  )

async function drain(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const piece of body) parts.push(Buffer.from(piece))
  return Buffer.concat(parts)
}

describe('connect() to a running node', () => {
  let daemon: Daemon
  let client: DcasClient

  beforeEach(async () => {
    const root = join(dir.path, 'node')
    // A node alone: puts are stored locally only (write quorum 0).
    await initNode({ root, listen: '127.0.0.1:0', http: '127.0.0.1:0', writeQuorum: 0 })
    daemon = await startDaemon({ root })
    client = await connect({ root })
  })

  afterEach(async () => {
    await daemon.close()
  })

  it('puts from an async iterable and gets a byte range back, reporting progress both ways', async () => {
    const sent: number[] = []
    const data = Buffer.from('0123456789'.repeat(1000))
    const result = await client.put('k', (async function* () {
      await Promise.resolve()
      yield data.subarray(0, 4000)
      yield data.subarray(4000)
    })(), { onProgress: (n) => sent.push(n) })
    expect(result).toMatchObject({ size: data.length, sha256: sha256(data) })
    expect(sent.at(-1)).toBe(data.length)
    const got = await client.get('k', { offset: 10, length: 25 })
    expect(got).toMatchObject({ offset: 10, length: 25, info: { size: data.length, sha256: sha256(data), version: 1 } })
    expect((await drain(got.body)).toString()).toBe(data.subarray(10, 35).toString())
  })

  it('stores and reads keys that URL handling would take for path steps', async () => {
    for (const key of ['.', '..', '../x', 'a/./b', 'a/../b', '%2E']) {
      await client.put(key, `value of ${key}`)
      expect((await drain((await client.get(key)).body)).toString(), key).toBe(`value of ${key}`)
    }
    const listed = (await client.list()).objects.map((o) => o.key)
    expect(listed.sort()).toEqual(['%2E', '.', '..', '../x', 'a/../b', 'a/./b'].sort())
  })

  it('fails with ERR_NOT_FOUND for an unknown key, ERR_INVALID_KEY for a bad one, ERR_USAGE past the end', async () => {
    await client.put('small', 'abc')
    expect(await codeOf(client.head('missing'))).toBe('ERR_NOT_FOUND')
    expect(await codeOf(client.get('missing'))).toBe('ERR_NOT_FOUND')
    expect(await codeOf(client.delete('missing'))).toBe('ERR_NOT_FOUND')
    expect(await codeOf(client.put('', 'x'))).toBe('ERR_INVALID_KEY')
    expect(await codeOf(client.get('small', { offset: 3 }))).toBe('ERR_USAGE')
  })

  it('fails with ERR_UNAUTHORIZED when the token is not the node\'s', async () => {
    const stranger = await connect({ url: daemon.url, token: 'stale-token' })
    expect(await codeOf(stranger.status())).toBe('ERR_UNAUTHORIZED')
    expect(await codeOf(stranger.put('k', 'x'))).toBe('ERR_UNAUTHORIZED')
    expect(await codeOf(client.head('k'))).toBe('ERR_NOT_FOUND')
  })

  it('fails with ERR_NOT_RUNNING once the node is closed, and a put of a failing source keeps the source error', async () => {
    const failing = (async function* () {
      yield Buffer.alloc(1024)
      await Promise.resolve()
      throw new Error('disk read failed')
    })()
    await expect(client.put('k', failing)).rejects.toThrow('disk read failed')
    await daemon.close()
    expect(await codeOf(client.status())).toBe('ERR_NOT_RUNNING')
  })
})

describe('a client never takes bad bytes for an object', () => {
  let fake: HttpServer
  let url: string
  let answer: (res: ServerResponse) => void

  beforeEach(async () => {
    fake = createServer((_req, res) => answer(res))
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`
  })

  afterEach(async () => {
    fake.closeAllConnections()
    await new Promise((resolve) => fake.close(resolve))
  })

  const headers = (body: string, sha: string): Record<string, string> => ({ 'content-length': String(body.length), 'x-dcas-sha256': sha, 'x-dcas-version': '1', 'x-dcas-chunks': '1', 'x-dcas-replicas': '', 'last-modified': new Date().toUTCString() })

  it('fails with ERR_INTEGRITY when the bytes do not hash to the announced SHA-256', async () => {
    answer = (res) => res.writeHead(200, headers('tampered', sha256('original'))).end('tampered')
    const { body } = await (await connect({ url, token: 't' })).get('k')
    expect(await codeOf(drain(body))).toBe('ERR_INTEGRITY')
  })

  it('fails with ERR_UNAVAILABLE, not a clean end, when the node breaks off the transfer', async () => {
    answer = (res) => {
      res.writeHead(200, headers('x'.repeat(100_000), sha256('x'.repeat(100_000))))
      res.write('x'.repeat(1000), () => res.destroy())
    }
    const { body } = await (await connect({ url, token: 't' })).get('k')
    expect(await codeOf(drain(body))).toBe('ERR_UNAVAILABLE')
  })
})
