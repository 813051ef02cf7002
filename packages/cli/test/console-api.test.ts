// The web console's side of the HTTP API, without a browser: its pages, logging in to a session,
// one-time links, download tickets, folder listing and search, and the live status feed.
import { request } from 'node:http'
import { brotliDecompressSync } from 'node:zlib'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { initNode, startDaemon, type Daemon, type LaggingPage, type NodeStatus } from '../src/index.js'
import { tempDir } from './helpers.js'

let dir: { path: string; cleanup: () => Promise<void> }
let daemon: Daemon

beforeEach(async () => {
  dir = await tempDir()
  const root = join(dir.path, 'node')
  await initNode({ root, listen: '127.0.0.1:0', http: '127.0.0.1:0', writeQuorum: 0 })
  daemon = await startDaemon({ root })
})

afterEach(async () => {
  await daemon.close()
  await dir.cleanup()
})

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })
const call = (path: string, init: RequestInit = {}, token = daemon.token): Promise<Response> =>
  fetch(`${daemon.url}${path}`, { ...init, headers: { ...bearer(token), ...(init.headers as Record<string, string> | undefined) } })
const post = (path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(`${daemon.url}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } })
const errorCode = async (res: Response): Promise<string> => ((await res.json()) as { error: { code: string } }).error.code
const put = async (key: string, body: string): Promise<void> => {
  expect((await call(`/v1/objects/${encodeURIComponent(key)}`, { method: 'PUT', body })).status).toBe(201)
}
const login = async (): Promise<string> => {
  const res = await post('/v1/session', { token: daemon.token })
  expect(res.status).toBe(201)
  return ((await res.json()) as { session: string }).session
}

describe('the console pages', () => {
  it('serves the page without a token, locked down by its headers, and its assets compressed', async () => {
    const page = await fetch(`${daemon.url}/`)
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'")
    expect(page.headers.get('x-frame-options')).toBe('DENY')
    const html = await page.text()
    expect(html).toContain('/console/app.js')
    expect(html).not.toMatch(/https?:\/\//) // nothing from elsewhere

    const raw = await fetch(`${daemon.url}/console/app.js`, { headers: { 'accept-encoding': 'identity' } })
    const script = Buffer.from(await raw.arrayBuffer())
    expect(script.length).toBeGreaterThan(1000)
    // fetch decodes gzip itself: the same bytes come back.
    const gz = await fetch(`${daemon.url}/console/app.js`, { headers: { 'accept-encoding': 'gzip' } })
    expect(gz.headers.get('content-encoding')).toBe('gzip')
    expect(Buffer.from(await gz.arrayBuffer())).toEqual(script)
    const etag = raw.headers.get('etag')!
    expect((await fetch(`${daemon.url}/console/app.js`, { headers: { 'if-none-match': etag } })).status).toBe(304)
  })

  it('keeps its whole bundle well under 200 KB compressed (brotli)', async () => {
    let total = 0
    for (const path of ['/', '/console/app.js', '/console/app.css', '/console/icon.svg']) {
      const bytes = await new Promise<Buffer>((resolve, reject) => {
        request(`${daemon.url}${path}`, { headers: { 'accept-encoding': 'gzip, br' } }, (res) => {
          const pieces: Buffer[] = []
          res.on('data', (b: Buffer) => pieces.push(b))
          res.on('end', () => resolve(Buffer.concat(pieces)))
        })
          .on('error', reject)
          .end()
      })
      expect(brotliDecompressSync(bytes).length, path).toBeGreaterThan(0)
      total += bytes.length
    }
    expect(total).toBeLessThan(100 * 1024)
  })
})

describe('logging in', () => {
  it('refuses a wrong token with 401, and the refused one opens nothing', async () => {
    const res = await post('/v1/session', { token: 'not the token' })
    expect(res.status).toBe(401)
    const body = (await res.json()) as { error: { code: string; message: string }; session?: string }
    expect(body.error.code).toBe('ERR_UNAUTHORIZED')
    expect(body.error.message).toContain('api.json')
    expect(body.session).toBeUndefined()
  })

  it('answers 400 to a body that is not a small JSON object', async () => {
    expect((await fetch(`${daemon.url}/v1/session`, { method: 'POST', body: 'token' })).status).toBe(400)
    expect((await post('/v1/session', ['token'])).status).toBe(400)
    expect((await post('/v1/session', { token: 'x'.repeat(20_000) })).status).toBe(400)
  })

  it('gives a session the API accepts as a bearer token, until logout', async () => {
    const session = await login()
    expect(session).not.toBe(daemon.token)
    const status = await call('/v1/status', {}, session)
    expect(status.status).toBe(200)
    expect(((await status.json()) as NodeStatus).nodeId).toBe(daemon.nodeId)
    expect(await (await call('/v1/session', {}, session)).json()).toEqual({ nodeId: daemon.nodeId, kind: 'session' })
    expect((await call('/v1/session', { method: 'DELETE' }, session)).status).toBe(204)
    const after = await call('/v1/status', {}, session)
    expect(after.status).toBe(401)
    expect(await errorCode(after)).toBe('ERR_UNAUTHORIZED')
  })

  it('makes a one-time link with the API token only; the link logs in once', async () => {
    const session = await login()
    expect((await call('/v1/session/links', { method: 'POST' }, session)).status).toBe(401)
    const made = await call('/v1/session/links', { method: 'POST' })
    expect(made.status).toBe(201)
    const { url } = (await made.json()) as { url: string }
    expect(url.startsWith(`${daemon.url}/#login=`)).toBe(true)
    expect(url).not.toContain(daemon.token)
    const code = url.split('#login=')[1]!
    expect((await post('/v1/session', { link: code })).status).toBe(201)
    const again = await post('/v1/session', { link: code })
    expect(again.status).toBe(401)
    expect(((await again.json()) as { error: { message: string } }).error.message).toContain('dcas open')
  })
})

describe('download tickets', () => {
  it('download a key once, as an attachment named after it, without a bearer token', async () => {
    const key = 'reports/été 2024 "final"?#%.txt'
    await put(key, 'the report')
    const session = await login()
    const made = await call('/v1/downloads', { method: 'POST', body: JSON.stringify({ key }), headers: { 'content-type': 'application/json' } }, session)
    expect(made.status).toBe(201)
    const ticket = (await made.json()) as { url: string; size: number; sha256: string }
    expect(ticket.size).toBe(10)
    expect(ticket.url).toMatch(/^\/v1\/downloads\/[\w-]{43}$/)
    const res = await fetch(`${daemon.url}${ticket.url}`)
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('the report')
    expect(res.headers.get('x-dcas-sha256')).toBe(ticket.sha256)
    const disposition = res.headers.get('content-disposition')!
    expect(disposition).toContain(`filename*=UTF-8''${encodeURIComponent('été 2024 "final"?#%.txt')}`)
    expect(disposition).toContain('filename="_t_ 2024 _final_?#_.txt"')
    const again = await fetch(`${daemon.url}${ticket.url}`)
    expect(again.status).toBe(404)
    expect(((await again.json()) as { error: { message: string } }).error.message).toContain('used already or has expired')
  })

  it('are refused for a deleted key, with 404', async () => {
    await put('gone', 'x')
    expect((await call('/v1/objects/gone', { method: 'DELETE' })).status).toBe(200)
    const res = await call('/v1/downloads', { method: 'POST', body: JSON.stringify({ key: 'gone' }) })
    expect(res.status).toBe(404)
    expect(await errorCode(res)).toBe('ERR_NOT_FOUND')
  })

  it('need a session or the token to be made', async () => {
    await put('k', 'x')
    expect((await post('/v1/downloads', { key: 'k' })).status).toBe(401)
  })
})

describe('listing as folders', () => {
  const KEYS = ['a/1', 'a/b/2', 'a/b/3', 'c', 'd/', 'd/e', 'x', 'y/\u{10FFFF}z', 'y/a']

  beforeEach(async () => {
    for (const key of KEYS) await put(key, key)
  })

  type Page = { objects: Array<{ key: string }>; prefixes?: string[]; next?: string; scanned?: number }
  const list = async (query: Record<string, string>): Promise<Page> => {
    const res = await call(`/v1/objects?${new URLSearchParams(query).toString()}`)
    expect(res.status).toBe(200)
    return (await res.json()) as Page
  }

  it('folds the keys under each sub-folder into one prefix', async () => {
    const top = await list({ delimiter: '/' })
    expect(top.objects.map((o) => o.key)).toEqual(['c', 'x'])
    expect(top.prefixes).toEqual(['a/', 'd/', 'y/'])
    expect(top.next).toBeUndefined()
    const a = await list({ prefix: 'a/', delimiter: '/' })
    expect(a.objects.map((o) => o.key)).toEqual(['a/1'])
    expect(a.prefixes).toEqual(['a/b/'])
    const d = await list({ prefix: 'd/', delimiter: '/' })
    expect(d.objects.map((o) => o.key)).toEqual(['d/', 'd/e'])
  })

  it('pages through folders and objects one at a time, each once', async () => {
    const seen: string[] = []
    let after: string | undefined
    for (let i = 0; i < 20; i++) {
      const page = await list({ delimiter: '/', limit: '1', ...(after === undefined ? {} : { after }) })
      seen.push(...(page.prefixes ?? []), ...page.objects.map((o) => o.key))
      if (page.next === undefined) break
      after = page.next
    }
    expect(seen).toEqual(['a/', 'c', 'd/', 'x', 'y/'])
  })

  it('searches the keys under a prefix by a part of their name, ignoring case', async () => {
    const found = await list({ contains: 'B/' })
    expect(found.objects.map((o) => o.key)).toEqual(['a/b/2', 'a/b/3'])
    expect(found.scanned).toBe(KEYS.length)
    expect(found.next).toBeUndefined()
    const under = await list({ prefix: 'a/', contains: '1' })
    expect(under.objects.map((o) => o.key)).toEqual(['a/1'])
    const paged = await list({ contains: '/', limit: '2' })
    expect(paged.objects.map((o) => o.key)).toEqual(['a/1', 'a/b/2'])
    expect(paged.next).toBe('a/b/2')
  })

  it('refuses delimiter and contains together', async () => {
    const res = await call('/v1/objects?delimiter=/&contains=a')
    expect(res.status).toBe(400)
  })
})

describe('objects not on every peer', () => {
  it('lists each object a known peer lacks, with the peers that lack it', async () => {
    const rootB = join(dir.path, 'b')
    await initNode({ root: rootB, listen: '127.0.0.1:0', http: '127.0.0.1:0', joinFile: join(dir.path, 'node', 'identity', 'cluster-secret') })
    const b = await startDaemon({ root: rootB, peers: [daemon.address] })
    try {
      await Promise.all([daemon.server.waitForPeers(1), b.server.waitForPeers(1)])
      await put('on-both', 'x')
    } finally {
      await b.close()
    }
    await put('only-here-1', 'y')
    await put('only-here-2', 'z')
    const all = (await (await call('/v1/lagging')).json()) as LaggingPage
    expect(all.objects.map((o) => [o.key, o.missing, o.replicas])).toEqual([
      ['only-here-1', [b.nodeId], []],
      ['only-here-2', [b.nodeId], []],
    ])
    expect(all.next).toBeUndefined()
    const first = (await (await call('/v1/lagging?limit=1')).json()) as LaggingPage
    expect(first.objects.map((o) => o.key)).toEqual(['only-here-1'])
    const rest = (await (await call(`/v1/lagging?limit=1&after=${first.next!}`)).json()) as LaggingPage
    expect(rest.objects.map((o) => o.key)).toEqual(['only-here-2'])
  })
})

describe('the live status feed', () => {
  it('sends the status to a session as server-sent events, and ends when the node closes', async () => {
    const session = await login()
    const res = await call('/v1/events', {}, session)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
    let text = ''
    while (!/event: status\ndata: .*\n\n/.test(text)) {
      const { value, done } = await reader.read()
      if (done) break
      text += value
    }
    const data = /event: status\ndata: (.*)\n\n/.exec(text)?.[1]
    expect((JSON.parse(data!) as NodeStatus).nodeId).toBe(daemon.nodeId)
    // The open stream does not hold the close up, and ends with it.
    await daemon.close()
    for (;;) {
      const { done } = await reader.read()
      if (done) break
    }
  })

  it('needs a token', async () => {
    expect((await fetch(`${daemon.url}/v1/events`)).status).toBe(401)
  })
})
