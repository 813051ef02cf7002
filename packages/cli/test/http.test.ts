import { request } from 'node:http'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Server } from '@dcas/server'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { initNode, startDaemon, type Daemon } from '../src/index.js'
import { filesUnder, sha256, tempDir } from './helpers.js'
import { parseExposition } from './prometheus.js'

let dir: { path: string; cleanup: () => Promise<void> }
let daemon: Daemon
let root: string

beforeEach(async () => {
  dir = await tempDir()
  root = join(dir.path, 'node')
  await initNode({ root, listen: '127.0.0.1:0', http: '127.0.0.1:0' })
  daemon = await startDaemon({ root })
})

afterEach(async () => {
  await daemon.close()
  await dir.cleanup()
})

const objectUrl = (key: string): string => `${daemon.url}/v1/objects/${encodeURIComponent(key)}`
const auth = (token = daemon.token): Record<string, string> => ({ authorization: `Bearer ${token}` })
const api = (path: string, init: RequestInit = {}): Promise<Response> => fetch(`${daemon.url}${path}`, { ...init, headers: { ...auth(), ...(init.headers as Record<string, string> | undefined) } })
const put = (key: string, body: string | Uint8Array): Promise<Response> => fetch(objectUrl(key), { method: 'PUT', body, headers: auth() })
const errorCode = async (res: Response): Promise<string> => ((await res.json()) as { error: { code: string } }).error.code

describe('authentication', () => {
  it.each([
    ['no token', {}],
    ['a wrong token', auth('not-the-token')],
    ['another scheme', { authorization: 'Basic dXNlcjpwYXNz' }],
  ])('answers 401 to %s, and stores nothing', async (_, headers: Record<string, string>) => {
    const res = await fetch(objectUrl('k'), { method: 'PUT', body: 'must not be stored', headers })
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toContain('Bearer')
    expect(await errorCode(res)).toBe('ERR_UNAUTHORIZED')
    expect((await fetch(objectUrl('k'), { method: 'HEAD', headers: auth() })).status).toBe(404)
    expect(await filesUnder(join(root, 'blobs'))).toEqual([])
  })

  it('answers 401 to a DELETE with a wrong token, and deletes nothing', async () => {
    await put('k', 'kept')
    const res = await fetch(objectUrl('k'), { method: 'DELETE', headers: auth('wrong') })
    expect(res.status).toBe(401)
    expect(await (await fetch(objectUrl('k'), { headers: auth() })).text()).toBe('kept')
  })

  it('guards every route, /metrics and /v1/status included', async () => {
    for (const path of ['/metrics', '/v1/status', '/v1/peers', '/v1/objects', '/v1/objects/k']) {
      expect((await fetch(`${daemon.url}${path}`)).status, path).toBe(401)
    }
    expect((await fetch(`${daemon.url}/v1/scrub`, { method: 'POST' })).status).toBe(401)
  })
})

describe('objects', () => {
  it('stores and reads back keys with slashes, spaces, question marks and non-ASCII letters', async () => {
    for (const key of ['a/b/c.txt', 'with space?and=query&x', 'été/ünïcode', '../../etc/passwd']) {
      const res = await put(key, `value of ${key}`)
      expect(res.status, key).toBe(201)
      expect(await res.json()).toMatchObject({ key, size: Buffer.byteLength(`value of ${key}`), sha256: sha256(`value of ${key}`), version: 1 })
      expect(await (await fetch(objectUrl(key), { headers: auth() })).text()).toBe(`value of ${key}`)
    }
  })

  it('answers HEAD with the size, SHA-256 and version, and no body', async () => {
    await put('k', 'twelve bytes')
    const res = await fetch(objectUrl('k'), { method: 'HEAD', headers: auth() })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-length')).toBe('12')
    expect(res.headers.get('etag')).toBe(`"${sha256('twelve bytes')}"`)
    expect(res.headers.get('x-dcas-version')).toBe('1')
    expect(res.headers.get('accept-ranges')).toBe('bytes')
    expect(await res.text()).toBe('')
  })

  it('stores the empty object from a body-less PUT', async () => {
    expect((await fetch(objectUrl('empty'), { method: 'PUT', headers: auth() })).status).toBe(201)
    const res = await fetch(objectUrl('empty'), { headers: auth() })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('')
  })

  it('answers 404 ERR_NOT_FOUND for an unknown key and 400 ERR_INVALID_KEY for a key with NUL', async () => {
    const missing = await fetch(objectUrl('never-stored'), { headers: auth() })
    expect(missing.status).toBe(404)
    expect(await errorCode(missing)).toBe('ERR_NOT_FOUND')
    const bad = await put('a\0b', 'x')
    expect(bad.status).toBe(400)
    expect(await errorCode(bad)).toBe('ERR_INVALID_KEY')
  })

  it('deletes, after which GET answers 404', async () => {
    await put('k', 'x')
    const res = await fetch(objectUrl('k'), { method: 'DELETE', headers: auth() })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ acknowledged: [], pending: [] })
    expect((await fetch(objectUrl('k'), { headers: auth() })).status).toBe(404)
  })

  it('answers 503 ERR_UNAVAILABLE before any byte when a chunk is lost and no peer has it', async () => {
    await put('k', Buffer.alloc(3 * 1024 * 1024, 7))
    await rm(join(root, 'blobs'), { recursive: true })
    const res = await fetch(objectUrl('k'), { headers: auth() })
    expect(res.status).toBe(503)
    expect(await errorCode(res)).toBe('ERR_UNAVAILABLE')
  })
})

describe('Range', () => {
  const data = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 17 }, (_, i) => (i * 31 + 7) % 251))

  beforeEach(async () => {
    expect((await put('ranged', data)).status).toBe(201)
  })

  const get = (range: string): Promise<Response> => fetch(objectUrl('ranged'), { headers: { ...auth(), range } })

  it('serves a byte range across chunk boundaries with 206 and Content-Range', async () => {
    const res = await get('bytes=1048000-2097200')
    expect(res.status).toBe(206)
    expect(res.headers.get('content-range')).toBe(`bytes 1048000-2097200/${data.length}`)
    expect(res.headers.get('content-length')).toBe(String(2097200 - 1048000 + 1))
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(data.subarray(1048000, 2097201)))
  })

  it('serves an open range and a suffix range', async () => {
    expect(Buffer.from(await (await get('bytes=3145700-')).arrayBuffer())).toEqual(data.subarray(3145700))
    const suffix = await get('bytes=-10')
    expect(suffix.headers.get('content-range')).toBe(`bytes ${data.length - 10}-${data.length - 1}/${data.length}`)
    expect(Buffer.from(await suffix.arrayBuffer())).toEqual(data.subarray(data.length - 10))
  })

  it('answers 416 with the size for a range past the end', async () => {
    const res = await get(`bytes=${data.length}-`)
    expect(res.status).toBe(416)
    expect(res.headers.get('content-range')).toBe(`bytes */${data.length}`)
  })

  it('resumes a range only of the version named by If-Range, and answers 412 to an If-Match of another version', async () => {
    const etag = `"${sha256(data)}"`
    const resumed = await fetch(objectUrl('ranged'), { headers: { ...auth(), range: 'bytes=10-19', 'if-range': etag } })
    expect(resumed.status).toBe(206)
    expect(Buffer.from(await resumed.arrayBuffer())).toEqual(data.subarray(10, 20))
    expect((await put('ranged', 'a newer version')).status).toBe(201)
    const whole = await fetch(objectUrl('ranged'), { headers: { ...auth(), range: 'bytes=10-19', 'if-range': etag } })
    expect(whole.status).toBe(200)
    expect(await whole.text()).toBe('a newer version')
    const refused = await fetch(objectUrl('ranged'), { headers: { ...auth(), 'if-match': etag } })
    expect(refused.status).toBe(412)
    expect(await errorCode(refused)).toBe('ERR_PRECONDITION')
  })

  it('serves the whole object for several ranges or a malformed header', async () => {
    for (const range of ['bytes=0-1,10-20', 'pages=1-2', 'bytes']) {
      const res = await get(range)
      expect(res.status, range).toBe(200)
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(data))
    }
  })
})

describe('listing', () => {
  it('lists keys in order by prefix, a page at a time, with the key to continue after', async () => {
    for (const key of ['b/2', 'a/1', 'b/1', 'b/3', 'c']) await put(key, key)
    const page1 = (await (await api('/v1/objects?prefix=b/&limit=2')).json()) as { objects: Array<{ key: string; size: number }>; next?: string }
    expect(page1.objects.map((o) => o.key)).toEqual(['b/1', 'b/2'])
    expect(page1.next).toBe('b/2')
    const page2 = (await (await api(`/v1/objects?prefix=b/&limit=2&after=${page1.next}`)).json()) as { objects: Array<{ key: string }>; next?: string }
    expect(page2.objects.map((o) => o.key)).toEqual(['b/3'])
    expect(page2.next).toBeUndefined()
  })

  it('answers 400 to a limit that is not a positive integer', async () => {
    for (const q of ['limit=0', 'limit=x', 'limit=100001', 'limit=1.5']) {
      expect((await api(`/v1/objects?${q}`)).status, q).toBe(400)
    }
  })
})

describe('interrupted upload', () => {
  it('leaves no object, no blob and no temporary file when the client disconnects mid-upload', async () => {
    const server: Server = daemon.server
    const original = server.store.bind(server)
    // Learn when the server has consumed 2 MiB of the body (so chunks were written), and how the store ended.
    let consumed!: () => void
    const halfway = new Promise<void>((resolve) => (consumed = resolve))
    let settled!: Promise<unknown>
    server.store = (key, data, options) => {
      async function* tap(): AsyncGenerator<Uint8Array> {
        let n = 0
        for await (const piece of data as AsyncIterable<Uint8Array>) {
          n += piece.length
          yield piece
          if (n >= 2 * 1024 * 1024) consumed()
        }
      }
      const p = original(key, tap(), options)
      settled = p.then(
        () => 'stored',
        (err: { code?: string; message: string }) => err,
      )
      return p
    }
    const req = request(objectUrl('partial'), { method: 'PUT', headers: { ...auth(), 'content-length': String(64 * 1024 * 1024) } })
    req.on('error', () => {})
    const piece = Buffer.alloc(256 * 1024, 1)
    for (let i = 0; i < 16; i++) req.write(piece) // 4 MiB of the announced 64
    await halfway
    req.destroy()
    const outcome = await settled
    expect(outcome).not.toBe('stored')

    expect((await fetch(objectUrl('partial'), { method: 'HEAD', headers: auth() })).status).toBe(404)
    expect(((await (await api('/v1/objects')).json()) as { objects: unknown[] }).objects).toEqual([])
    expect(await filesUnder(join(root, 'blobs'))).toEqual([])
    expect(await filesUnder(join(root, 'tmp'))).toEqual([])
    const metrics = parseExposition(await (await api('/metrics')).text())
    expect(metrics.value('dcas_errors_total', { operation: 'put', code: 'ERR_ABORTED' })).toBe(1)
  })
})

describe('/metrics', () => {
  it('serves the Prometheus text format, counting bytes, operations, errors and objects', async () => {
    const data = Buffer.alloc(1_500_000, 3)
    await put('m', data)
    await (await fetch(objectUrl('m'), { headers: auth() })).arrayBuffer()
    await (await fetch(objectUrl('m'), { headers: { ...auth(), range: 'bytes=0-99' } })).arrayBuffer()
    await (await fetch(objectUrl('nope'), { headers: auth() })).arrayBuffer()
    const res = await api('/metrics')
    expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4')
    const metrics = parseExposition(await res.text())
    expect(metrics.value('dcas_bytes_stored_total')).toBe(data.length)
    expect(metrics.value('dcas_bytes_read_total')).toBe(data.length + 100)
    expect(metrics.value('dcas_operations_total', { operation: 'put' })).toBe(1)
    expect(metrics.value('dcas_operations_total', { operation: 'get' })).toBe(3)
    expect(metrics.value('dcas_errors_total', { operation: 'get', code: 'ERR_NOT_FOUND' })).toBe(1)
    expect(metrics.value('dcas_objects')).toBe(1)
    expect(metrics.value('dcas_object_bytes')).toBe(data.length)
    expect(metrics.value('dcas_peers_connected')).toBe(0)
    expect(metrics.value('dcas_replication_lag_objects')).toBe(0)
    expect(metrics.value('dcas_unreplicated_objects')).toBe(1)
    expect(metrics.value('dcas_healed_chunks_total')).toBe(0)
    expect(metrics.type('dcas_scrubs_total')).toBe('counter')
    expect(metrics.value('process_resident_memory_bytes')).toBeGreaterThan(0)
  })

  it('counts scrubs, and the chunks they heal or cannot', async () => {
    await put('s', Buffer.alloc(2 * 1024 * 1024 + 1, 9))
    const scrub = await api('/v1/scrub', { method: 'POST' })
    expect(await scrub.json()).toEqual({ objects: 1, bytes: 2 * 1024 * 1024 + 1, healed: 0, failed: [], audited: 0, lostCopies: [] })
    const metrics = parseExposition(await (await api('/metrics')).text())
    expect(metrics.value('dcas_scrubs_total')).toBe(1)
    expect(metrics.value('dcas_scrub_objects_total')).toBe(1)
    expect(metrics.value('dcas_scrub_failed_objects_total')).toBe(0)
  })
})

describe('/v1/status', () => {
  it('reports the node, its objects, disk and memory use', async () => {
    await put('k', Buffer.alloc(100_000, 1))
    const status = (await (await api('/v1/status')).json()) as Awaited<ReturnType<Daemon['status']>>
    expect(status).toMatchObject({ nodeId: daemon.nodeId, address: daemon.address, api: daemon.url, root, pid: process.pid, peers: [] })
    expect(status.objects).toEqual({ objects: 1, bytes: 100_000, replicated: 1, lagging: 0, lagBytes: 0, unreplicated: 1 })
    expect(status.disk.blobs).toBeGreaterThanOrEqual(100_000)
    expect(status.disk.index).toBeGreaterThan(0)
    expect(status.disk.free).toBeGreaterThan(0)
    expect(status.memory.maxRss).toBeGreaterThanOrEqual(status.memory.rss)
  })
})
