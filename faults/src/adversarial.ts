// Adversarial inputs against a real node C (a child process, TCP), with honest peers A and B:
// a hostile peer H admitted with the right secret serves C bad data (wrong bytes, another blob,
// an older valid version, malformed, oversized, short, long, silent, never-ending answers), lies
// in catch-up, and sends C malformed, oversized, out-of-order and never-ending requests and raw
// multiplexer frames; unknown clients (wrong secret, no proof, no certificate, no TLS, garbage,
// silence) must be closed before any application byte, and a stranger's recorded handshake must
// confirm no guess of the secret offline; floods of idle sockets (from many addresses, or one)
// must not lock honest peers out or flood C's log, and an admitted peer that opens streams
// without end must not grow C's memory past its budget; then the hardening cases (hardening.ts).
// After each case C must be up, still connected to A and B, and serve the right bytes; H's own
// disk-equivalent must hold no canary.
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { closeSync, openSync } from 'node:fs'
import { mkdir, readFile, rm } from 'node:fs/promises'
import { connect as tcpConnect, type Socket } from 'node:net'
import { confirmation, startCpace, transcriptOf } from '@dcas/p2p/testing/admission'
import { join } from 'node:path'
import { spawnNode, type ChildServerOptions, type NodeHandle } from '@dcas/server/testing'
import { healthy, reconnected, REQUEST_TIMEOUT, type Env } from './adversarial-env.js'
import { filesUnder, ownManifestIn, ownBlobFiles, replicaFiles, sha256File, type ManifestView } from './disk.js'
import { hardening, HOLDER_LIMITS } from './hardening.js'
import { admitTo, drain, frame, HostilePeer, parseResponses, rawClient, stretched, type ListMode, type ServeMode } from './hostile.js'
import { splitAddress } from './proxy.js'
import { digestOf, type Content } from './model.js'
import type { Report } from './report.js'
import type { Rng } from './rng.js'

const KiB = 1024
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const blobPath = (root: string, id: string): string => join(root, 'blobs', id.slice(0, 2), id.slice(2, 4), id)

/** A yamux frame header (12 bytes), optionally followed by payload. */
function yamux(type: number, flags: number, streamId: number, length: number, payload?: Buffer, version = 0): Buffer {
  const h = Buffer.alloc(12)
  h[0] = version
  h[1] = type
  h.writeUInt16BE(flags, 2)
  h.writeUInt32BE(streamId, 4)
  h.writeUInt32BE(length, 8)
  return payload === undefined ? h : Buffer.concat([h, payload])
}

/** Runs every adversarial case once; findings go to the report as violations. */
export async function adversarial(dir: string, secret: string, rng: Rng, report: Report, canary: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  const logFd = join(dir, 'nodes.log')
  const fd = openSync(logFd, 'a')
  const nodes: NodeHandle[] = []
  const expected = new Set<NodeHandle>()
  const spawn = async (name: string, options: Partial<ChildServerOptions> = {}): Promise<NodeHandle> => {
    // Every peer holds every object: the hostile peer among them.
    const n = await spawnNode({ root: join(dir, name), clusterSecret: secret, chunkSize: 64 * KiB, requestTimeout: REQUEST_TIMEOUT, replicas: 'all', ...options }, { output: fd, logLevel: 'warn' })
    n.events.on('exit', (code: number | null, signal: string | null) => {
      if (!expected.has(n)) report.violation('crash', `adversarial: node ${name} exited (${signal ?? `code ${code}`}); see ${logFd}`)
    })
    nodes.push(n)
    return n
  }
  let h: HostilePeer | undefined
  try {
    // C holds little for other owners (H stores into it without end in one case).
    const c = await spawn('c', { holderLimits: HOLDER_LIMITS })
    const a = await spawn('a', { bootstrap: [c.address] })
    const b = await spawn('b', { bootstrap: [c.address] })
    // C asks the holders of a blob in the order of their node ids (every peer holds every ref), so H's
    // id sorts first: H is asked first.
    h = await HostilePeer.create((id) => id < a.nodeId && id < b.nodeId)
    await h.connect(c.address, secret)
    await c.waitForPeers(3, 30_000)
    await Promise.all([a.waitForPeers(1, 30_000), b.waitForPeers(1, 30_000)])
    await c.waitForSync()
    const env: Env = {
      dir,
      log: logFd,
      secret,
      report,
      rng,
      a,
      b,
      c,
      rootC: join(dir, 'c'),
      h,
      fail: (what, detail) => report.violation('adversarial', `${what}: ${detail}`),
      spawn,
      retire: (node) => void expected.add(node),
    }
    // Each group named in runner.log as it starts: a run that stops making progress shows where.
    const groups: Array<[string, () => Promise<void>]> = [
      ['hostile holders', () => badHolder(env, canary)],
      ['hostile catch-up answers', () => badCatchUp(env)],
      ['malformed requests', () => badRequests(env)],
      ['malformed frames', () => badFrames(env)],
      ['unknown clients', () => unknownClients(env)],
      ['socket floods', () => socketFloods(env)],
      ['stream flood', () => streamFlood(env)],
      ['hardening', () => hardening(env)],
    ]
    for (const [name, run] of groups) {
      report.log(`adversarial: ${name}`)
      await run()
    }
  } finally {
    await h?.disconnect().catch(() => {})
    for (const n of nodes) expected.add(n)
    await Promise.all(nodes.map((n) => n.close()))
    closeSync(fd)
  }
}

async function badHolder(env: Env, canary: string): Promise<void> {
  const { c, h, rootC } = env
  const modes: ServeMode[] = ['wrong-bytes', 'other-blob', 'malformed-header', 'huge-header', 'oversized-size', 'short-body', 'long-body', 'silent', 'trickle', 'error']
  const contents = new Map<string, Content>()
  for (const [i] of modes.entries()) {
    const content: Content = { kind: 'gen', size: 200 * KiB + i, seed: `adv-${env.rng.hex()}` }
    contents.set(`adv/k${i}`, content)
    const r = await c.store(`adv/k${i}`, content.size, content.seed)
    if (!r.replicas.includes(h.nodeId)) env.fail('setup', `the hostile peer holds no replica of adv/k${i}`)
  }
  await c.storeText('adv/canary', `${canary} held by a hostile peer `.repeat(50))
  // Two versions of one key: H will offer the older manifest for the newer.
  const v1: Content = { kind: 'gen', size: 150 * KiB, seed: `adv-v1-${env.rng.hex()}` }
  const v2: Content = { kind: 'gen', size: 170 * KiB, seed: `adv-v2-${env.rng.hex()}` }
  await c.store('adv/ver', v1.size, v1.seed)
  const refV1 = h.refPuts[h.refPuts.length - 1]!
  await c.store('adv/ver', v2.size, v2.seed)
  const refV2 = h.refPuts[h.refPuts.length - 1]!
  contents.set('adv/ver', v2)

  // The hostile peer never sees plaintext: no canary in anything it was sent.
  const needle = Buffer.from(canary)
  for (const [id, bytes] of h.blobs) if (bytes.includes(needle)) env.fail('confidentiality', `the hostile peer received the canary in blob ${id.slice(0, 12)}`)

  const manifests = new Map<string, ManifestView>()
  for (const f of await ownBlobFiles(rootC)) {
    const m = await ownManifestIn(f)
    if (m !== undefined) manifests.set(`${m.key}@${m.version}`, m)
  }
  const healedFrom: string[] = []
  c.events.on('healed', (e: { from: string }) => healedFrom.push(e.from))
  const honest = new Set([env.a.nodeId, env.b.nodeId])

  const tryCase = async (what: string, key: string, lose: string, askedFor: string): Promise<void> => {
    env.report.extra.hostileCases++
    env.report.log(`adversarial: ${what}`)
    h.gets.length = 0
    healedFrom.length = 0
    await rm(blobPath(rootC, lose), { force: true })
    try {
      const got = await c.read(key)
      if (got.sha256 !== (await digestOf(contents.get(key)!))) env.fail(what, `C served wrong bytes for ${key}`)
    } catch (err) {
      env.fail(what, `C's read of ${key} failed although honest peers hold it: ${err instanceof Error ? err.message : String(err)}`)
    }
    if (!h.gets.includes(askedFor)) env.fail(what, `the hostile peer was not asked first (test set-up: C asked ${h.gets.length} blobs of it)`)
    for (const from of healedFrom) if (!honest.has(from)) env.fail(what, `C healed from ${from.slice(0, 12)}, not from an honest peer`)
    await healthy(env, what, key, contents.get(key))
  }

  for (const [i, mode] of modes.entries()) {
    const key = `adv/k${i}`
    const m = [...manifests.values()].find((x) => x.key === key)
    if (m === undefined) {
      env.fail(mode, `no manifest of ${key} on C's disk`)
      continue
    }
    // A read asks for its i-th chunk first the (i mod holders)-th of the holders in order: the first chunk, H.
    const chunk = m.chunks[0]!
    h.mode = mode
    await tryCase(`hostile holder: ${mode}`, key, chunk.plainId, chunk.cipherId)
  }
  // An older valid version: the v1 manifest's ciphertext offered for v2's.
  const mv2 = manifests.get(`adv/ver@${refV2.version}`)
  if (mv2 === undefined) env.fail('older version', 'no v2 manifest of adv/ver on C')
  else {
    h.mode = 'substitute'
    h.substitutes.set(refV2.manifestCipherId, refV1.manifestCipherId)
    await tryCase('hostile holder: older valid manifest version', 'adv/ver', mv2.id, refV2.manifestCipherId)
  }
  h.mode = 'honest'
}

async function badCatchUp(env: Env): Promise<void> {
  const { c, h } = env
  const modes: ListMode[] = ['fake-newer', 'fake-tombstones', 'fake-tombstones-dated', 'malformed', 'backwards', 'huge-page', 'many-stanzas']
  for (const mode of modes) {
    env.report.extra.hostileCases++
    const what = `hostile catch-up answer: ${mode}`
    // A fresh key per case (H holds a replica of it), so that each case is judged on its own.
    await c.store(`adv/catch-up/${mode}`, 50 * KiB, `adv-cu-${mode}-${env.rng.hex()}`)
    const before = new Map((await c.list({ prefix: 'adv/' })).map((e) => [e.key, e]))
    await h.disconnect()
    h.listMode = mode
    try {
      await h.connect(c.address, env.secret)
      await c.waitForPeers(3, 15_000)
      await c.waitForSync()
    } catch (err) {
      env.fail(what, `reconnecting the hostile peer failed: ${err instanceof Error ? err.message : String(err)}`)
    }
    const after = new Map((await c.list({ prefix: 'adv/' })).map((e) => [e.key, e]))
    const lost = [...before.keys()].filter((key) => !after.has(key))
    if (lost.length > 0) env.fail(what, `C lost ${lost.length} of its ${before.size} keys (${lost.slice(0, 4).join(', ')}${lost.length > 4 ? ', …' : ''})`)
    for (const [key, e] of before) {
      const now = after.get(key)
      if (now === undefined) continue
      else if (now.version !== e.version || now.sha256 !== e.sha256) env.fail(what, `C's ${key} changed from v${e.version} to v${now.version}`)
      else {
        const got = await c.read(key).catch(() => undefined)
        if (got?.sha256 !== e.sha256) env.fail(what, `C does not read ${key} back right`)
      }
    }
    await healthy(env, what)
  }
  h.listMode = 'honest'
}

async function badRequests(env: Env): Promise<void> {
  const { h, rootC } = env
  const hostileDir = join(rootC, 'replicas', h.nodeId)
  const id = sha256(Buffer.from('the bytes it claims'))
  const reqs: Array<{ what: string; bytes: Buffer[]; end?: boolean; expect: 'reject' | 'answer' }> = [
    { what: 'empty header', bytes: [Buffer.from([0, 0, 0, 0])], expect: 'reject' },
    { what: 'oversized header (64 KiB + 1)', bytes: [Buffer.from([0, 1, 0, 1]), Buffer.alloc(65537, 0x20)], expect: 'reject' },
    { what: 'header length 2^32-1', bytes: [Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7b])], expect: 'reject' },
    { what: 'header not JSON', bytes: [Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from('hello')])], expect: 'reject' },
    { what: 'header a JSON array', bytes: [frame([1, 2, 3])], expect: 'reject' },
    { what: 'unknown operation', bytes: [frame({ v: 1, op: 'blob.nuke' })], expect: 'reject' },
    { what: 'unknown protocol version', bytes: [frame({ v: 99, op: 'blob.has', cipherIds: [] })], expect: 'reject' },
    { what: 'path in a cipherId', bytes: [frame({ v: 1, op: 'blob.put', cipherId: '../../../../identity/cluster-secret' })], expect: 'reject' },
    { what: 'cipherIds not a list', bytes: [frame({ v: 1, op: 'blob.has', cipherIds: 'x' })], expect: 'reject' },
    { what: '10,000 ids in blob.has', bytes: [frame({ v: 1, op: 'blob.has', cipherIds: Array.from({ length: 10_000 }, () => id) })], expect: 'reject' },
    { what: 'blob.put of bytes that do not hash to the cipherId', bytes: [frame({ v: 1, op: 'blob.put', cipherId: id }), frame({ size: 12 }), Buffer.from('other bytes!')], expect: 'reject' },
    { what: 'blob.put of 2^40 bytes', bytes: [frame({ v: 1, op: 'blob.put', cipherId: id }), frame({ size: 2 ** 40 }), randomBytes(100)], expect: 'reject' },
    { what: 'blob.put body shorter than announced', bytes: [frame({ v: 1, op: 'blob.put', cipherId: id }), frame({ size: 1000 }), randomBytes(10)], expect: 'reject' },
    { what: 'blob.put body longer than announced', bytes: [frame({ v: 1, op: 'blob.put', cipherId: sha256(Buffer.alloc(10)) }), frame({ size: 10 }), Buffer.alloc(1000)], expect: 'reject' },
    { what: 'size header before the request header', bytes: [frame({ size: 10 }), frame({ v: 1, op: 'blob.put', cipherId: id })], expect: 'reject' },
    { what: 'ref.put of blobs never sent', bytes: [frame({ v: 1, op: 'ref.put', refId: id, version: 1, manifestCipherId: id, size: 1, count: 1, bodySize: 68 }), Buffer.from(JSON.stringify([id]))], expect: 'reject' },
    { what: 'ref.put with 2^21 chunks', bytes: [frame({ v: 1, op: 'ref.put', refId: id, version: 1, manifestCipherId: id, size: 1, count: 2 ** 21, bodySize: 2 })], expect: 'reject' },
    { what: 'ref.put body not JSON', bytes: [frame({ v: 1, op: 'ref.put', refId: id, version: 1, manifestCipherId: id, size: 1, count: 1, bodySize: 5 }), Buffer.from('nope!')], expect: 'reject' },
    { what: 'ref.put with a negative version', bytes: [frame({ v: 1, op: 'ref.put', refId: id, version: -1, manifestCipherId: id, size: 1, count: 0, bodySize: 2 }), Buffer.from('[]')], expect: 'reject' },
    { what: 'ref.store of bytes that do not hash to the cipherId', bytes: [frame({ v: 1, op: 'ref.store' }), frame({ cipherId: id, size: 12 }), Buffer.from('other bytes!'), frame({ end: true, refId: id, version: 1, manifestCipherId: id, count: 0, bodySize: 2 }), Buffer.from('[]')], expect: 'reject' },
    { what: 'ref.store of a blob of 2^40 bytes', bytes: [frame({ v: 1, op: 'ref.store' }), frame({ cipherId: id, size: 2 ** 40 }), randomBytes(100)], expect: 'reject' },
    { what: 'ref.store with a blob shorter than announced', bytes: [frame({ v: 1, op: 'ref.store' }), frame({ cipherId: id, size: 1000 }), randomBytes(10)], expect: 'reject' },
    { what: 'ref.store that ends before its ref', bytes: [frame({ v: 1, op: 'ref.store' }), frame({ cipherId: sha256(Buffer.alloc(11)), size: 11 }), Buffer.alloc(11)], expect: 'reject' },
    { what: 'ref.store naming blobs never sent', bytes: [frame({ v: 1, op: 'ref.store' }), frame({ cipherId: id }), frame({ end: true, refId: id, version: 1, manifestCipherId: id, count: 1, bodySize: 68 }), Buffer.from(JSON.stringify([id]))], expect: 'reject' },
    { what: 'ref.list after a non-id, limit 10^9', bytes: [frame({ v: 1, op: 'ref.list', after: 'zz', limit: 1e9 })], expect: 'reject' },
  ]
  for (const r of reqs) {
    env.report.extra.hostileCases++
    await reconnected(env, `hostile request: ${r.what}`)
    const out = await env.h.request(r.bytes, { timeoutMs: 10_000, ...(r.end === undefined ? {} : { end: r.end }) })
    // C may answer with an error, reset the stream, or close H's whole connection.
    const rejected = out.reset || env.h.connection?.open !== true || parseResponses(out.response).some((h) => h.ok === false)
    if (out.timedOut) env.fail(`hostile request: ${r.what}`, 'C neither answered nor closed the stream within 10 s')
    else if (r.expect === 'reject' && !rejected) env.fail(`hostile request: ${r.what}`, `C accepted it (${out.response.subarray(0, 120).toString()})`)
    await healthy(env, `hostile request: ${r.what}`)
  }
  // Nothing was kept from any of them.
  for (const f of await filesUnder(join(hostileDir, 'blobs'))) {
    if ((await sha256File(f)) !== f.slice(-64)) env.fail('hostile requests', `C keeps a damaged blob ${f}`)
  }
  for (const bad of [id, sha256(Buffer.alloc(10)), sha256(Buffer.alloc(11))]) {
    if ((await filesUnder(hostileDir)).some((f) => f.endsWith(bad))) env.fail('hostile requests', `C kept a rejected blob ${bad.slice(0, 12)}`)
  }

  // Another owner's blob: C holds A's replicas; H asks for them under its own name.
  await reconnected(env, "another owner's blob")
  await env.a.store('adv/a-object', 100 * KiB, `adv-a-${env.rng.hex()}`)
  const aFiles = await replicaFiles(rootC, env.a.nodeId)
  env.report.extra.hostileCases++
  for (const f of aFiles.slice(0, 3)) {
    const other = f.slice(-64)
    const out = await env.h.request(frame({ v: 1, op: 'blob.get', cipherId: other }))
    const head = parseResponse(out.response)
    if (head?.ok === true) env.fail("another owner's blob", `C served A's blob ${other.slice(0, 12)} to H`)
    const has = parseResponse((await env.h.request(frame({ v: 1, op: 'blob.has', cipherIds: [other] }))).response)
    if (!Array.isArray(has?.missing) || has.missing.length !== 1) env.fail("another owner's blob", `C told H it holds A's blob ${other.slice(0, 12)}`)
  }
  if (aFiles.length === 0) env.fail("another owner's blob", 'C holds no replica of A (set-up)')

  // Never-ending messages: a header that never completes, a body that trickles forever; C serves others meanwhile.
  env.report.extra.hostileCases++
  await reconnected(env, 'never-ending requests')
  const conn = env.h.connection!
  const hanging = await conn.openStream()
  await hanging.write(Buffer.from([0, 0, 0xea, 0x60, 0x7b]))
  const trickle = await conn.openStream()
  await trickle.write(Buffer.concat([frame({ v: 1, op: 'blob.put', cipherId: sha256(Buffer.from('never')) }), frame({ size: 1024 * 1024 })]))
  let dripping = true
  const drip = (async () => {
    while (dripping) {
      await trickle.write(randomBytes(16)).catch(() => (dripping = false))
      await new Promise((r) => setTimeout(r, 100))
    }
  })()
  const quick = await env.h.request(frame({ v: 1, op: 'blob.has', cipherIds: [id] }), { timeoutMs: 5_000 })
  // Closing H's connection over the endless messages is a fair answer too; a silent one is not.
  if (quick.timedOut) env.fail('never-ending requests', 'C stopped answering other requests on the same connection')
  await env.c.store('adv/while-hanging', 300 * KiB, `adv-h-${env.rng.hex()}`).then(
    (r) => {
      if (!r.replicas.includes(env.a.nodeId)) env.fail('never-ending requests', 'a store on C did not reach A meanwhile')
    },
    (err: unknown) => env.fail('never-ending requests', `a store on C failed meanwhile: ${String(err)}`),
  )
  dripping = false
  await drip
  hanging.reset()
  trickle.reset()
  await healthy(env, 'never-ending requests')
  if ((await filesUnder(hostileDir)).some((f) => f.endsWith(sha256(Buffer.from('never'))))) env.fail('never-ending requests', 'C kept part of the endless blob')

  await env.h.disconnect()
}

const parseResponse = (bytes: Buffer): Record<string, unknown> | undefined => parseResponses(bytes)[0]

async function badFrames(env: Env): Promise<void> {
  const cases: Array<{ what: string; bytes: Buffer; mustClose: boolean; minReceived?: number }> = [
    { what: 'random bytes', bytes: randomBytes(4 * KiB), mustClose: true },
    { what: 'frame version 1', bytes: yamux(2, 1, 0, 7, undefined, 1), mustClose: true },
    { what: 'unknown frame type', bytes: yamux(9, 0, 1, 0), mustClose: true },
    { what: 'data frame of 2^32-1 bytes', bytes: yamux(0, 1, 1, 0xffffffff), mustClose: true },
    { what: 'data on stream 0', bytes: yamux(0, 0, 0, 4, Buffer.from('data')), mustClose: true },
    // Beyond the 1 MiB a new stream may be granted with its acknowledgement, not only yamux's 256 KiB.
    { what: 'window overrun', bytes: yamux(0, 1, 1, 1280 * KiB, randomBytes(1280 * KiB)), mustClose: true },
    { what: 'stream id of the wrong parity', bytes: yamux(0, 1, 2, 4, Buffer.from('evil')), mustClose: true },
    { what: '20,000 pings', bytes: Buffer.concat(Array.from({ length: 20_000 }, (_, i) => yamux(2, 1, 0, i))), mustClose: false },
    // The limit is 256 (226 with the receive budget beside ten 1 MiB grants): the rest are refused,
    // each with a 12-byte reset, and the connection stays up.
    { what: '1,100 streams opened at once (the limit is 256)', bytes: Buffer.concat(Array.from({ length: 1100 }, (_, i) => yamux(1, 1, 2 * i + 1, 0))), mustClose: false, minReceived: (1100 - 256) * 12 },
    { what: 'a data frame that never completes', bytes: yamux(0, 1, 1, 200 * KiB, randomBytes(100)), mustClose: false },
  ]
  for (const k of cases) {
    env.report.extra.hostileCases++
    const out = await env.h.rawAfterAdmission(env.c.address, env.secret, k.bytes, k.mustClose ? 10_000 : 1_500).catch((err: unknown) => {
      env.fail(`raw frames: ${k.what}`, `admission failed: ${String(err)}`)
      return undefined
    })
    if (out !== undefined && k.mustClose && !out.closed) env.fail(`raw frames: ${k.what}`, 'C did not close the connection within 10 s')
    if (out !== undefined && k.minReceived !== undefined && out.received < k.minReceived) env.fail(`raw frames: ${k.what}`, `C answered ${out.received} bytes, not the ${k.minReceived} of its refusals`)
    await healthy(env, `raw frames: ${k.what}`)
  }
}

async function unknownClients(env: Env): Promise<void> {
  const address = env.c.address
  const silent = rawClient(address, undefined, 25_000)
  const refused = async (what: string, options: Parameters<typeof admitTo>[1]): Promise<string | undefined> => {
    env.report.extra.unknownClients++
    try {
      const { socket, status, identity } = await admitTo(address, options)
      if (status === 0) env.fail(`unknown client: ${what}`, 'it was admitted')
      const after = await drain(socket, 10_000)
      socket.destroy()
      if (after.bytes.length > 0) env.fail(`unknown client: ${what}`, `C sent ${after.bytes.length} bytes after its verdict`)
      if (!after.closed) env.fail(`unknown client: ${what}`, 'C did not close the connection within 10 s')
      return identity.nodeId
    } catch (err) {
      // Closing before or during admission is a refusal too.
      void err
      return undefined
    }
  }
  const ids: Array<string | undefined> = []
  ids.push(await refused('wrong secret', { secret: 'not the cluster secret' }))
  await strangerTranscript(env)
  ids.push(await refused('no proof', {}))
  ids.push(await refused('no certificate', { secret: env.secret, noCertificate: true }))
  // Application bytes pipelined right behind a wrong proof: a stream opening with a blob.put.
  const put = Buffer.concat([frame({ v: 1, op: 'blob.put', cipherId: sha256(Buffer.from('x')) }), frame({ size: 1 }), Buffer.from('x')])
  ids.push(await refused('wrong secret with pipelined frames', { secret: 'wrong', pipeline: Buffer.concat([yamux(0, 1, 1, put.length, put)]) }))
  for (const [what, bytes] of [
    ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\nHost: dcas\r\n\r\n')],
    ['garbage', randomBytes(1024)],
  ] as const) {
    env.report.extra.unknownClients++
    const out = await rawClient(address, bytes, 10_000)
    if (!out.closed) env.fail(`unknown client: ${what}`, 'C did not close the connection within 10 s')
    if (out.bytes.includes(Buffer.from('dcas'))) env.fail(`unknown client: ${what}`, 'C sent an admission message to a client without TLS')
    if (out.bytes.length > 0 && out.bytes[0] !== 0x15) env.fail(`unknown client: ${what}`, `C answered with ${out.bytes.length} bytes that are not a TLS alert`)
  }
  env.report.extra.unknownClients++
  const s = await silent
  if (!s.closed) env.fail('unknown client: silent', 'C kept a silent connection open for 25 s')
  if (s.bytes.length > 0 && s.bytes[0] !== 0x15) env.fail('unknown client: silent', `C sent ${s.bytes.length} bytes to a silent client`)
  const peers = await env.c.peers()
  for (const id of ids) if (id !== undefined && peers.some((p) => p.nodeId === id)) env.fail('unknown clients', `C lists the refused node ${id.slice(0, 12)} as a peer`)
  const owners = (await filesUnder(join(env.rootC, 'replicas'))).map((f) => f.split('/replicas/')[1]?.slice(0, 64))
  for (const id of ids) if (id !== undefined && owners.includes(id)) env.fail('unknown clients', `C keeps data for the refused node ${id.slice(0, 12)}`)
  await healthy(env, 'unknown clients')
}

/**
 * A stranger's recorded handshake: with everything it saw and its own CPace scalar, no word of a
 * dictionary that holds the real secret confirms C's tag offline (protocol 1 gave away an HMAC of
 * the secret here). What the stranger can compute does not depend on the word it tries: C's tag
 * answers only the guess its share committed to, online. The same computation on a handshake made
 * with the right secret does confirm (for every word alike), so the check is not vacuous.
 */
async function strangerTranscript(env: Env): Promise<void> {
  const what = 'unknown client: offline test of a recorded handshake'
  env.report.extra.unknownClients++
  const dictionary = ['password', 'letmein', env.secret, 'not the cluster secret', `${env.secret}!`]
  const offline = async (record: Awaited<ReturnType<typeof admitTo>>['record'], scalar: bigint): Promise<string[]> => {
    const confirmed: string[] = []
    if (record.theirShare === undefined || record.theirTag === undefined) return confirmed
    for (const word of dictionary) {
      const key = startCpace(await stretched(word), record.sessionId, scalar).sharedKey(record.theirShare, transcriptOf(record.ourHello, record.theirHello))
      if (key !== undefined && confirmation(key, 'inbound').equals(record.theirTag)) confirmed.push(word)
    }
    return confirmed
  }
  try {
    const noShare = await admitTo(env.c.address, {})
    noShare.socket.destroy()
    if (noShare.record.theirTag !== undefined) env.fail(what, 'C sent a confirmation to a stranger that offered no share')
    const scalar = 0x5eed_5eed_5eed_5eed_5eed_5eed_5eed_5eedn
    const stranger = await admitTo(env.c.address, { secret: 'not the cluster secret', scalar })
    stranger.socket.destroy()
    if (stranger.status === 0) env.fail(what, 'the stranger was admitted')
    const confirmedByStranger = await offline(stranger.record, scalar)
    if (confirmedByStranger.length > 0) env.fail(what, `the recorded handshake confirms ${confirmedByStranger.length} word(s) offline`)
    // The control: on a handshake made with the right secret, the same computation confirms.
    const honest = await admitTo(env.c.address, { secret: env.secret, scalar })
    honest.socket.destroy()
    const confirmedByHonest = await offline(honest.record, scalar)
    if (confirmedByHonest.length !== dictionary.length) env.fail(what, `the control handshake confirmed ${confirmedByHonest.length} of ${dictionary.length} words (the check is broken)`)
  } catch (err) {
    env.fail(what, `the handshake failed: ${err instanceof Error ? err.message : String(err)}`)
  }
}

/** An idle TCP connection to `address` from `localAddress` (a 127.x.y.z address): it sends nothing. */
async function idleSocket(address: string, localAddress: string): Promise<Socket | undefined> {
  const [host, port] = splitAddress(address)
  const socket = tcpConnect({ host, port, localAddress })
  socket.on('error', () => {})
  try {
    await once(socket, 'connect')
    return socket
  } catch {
    return undefined
  }
}

async function refusalLines(log: string): Promise<number> {
  const text = await readFile(log, 'utf8').catch(() => '')
  return text.split('\n').filter((line) => line.includes('inbound connection refused')).length
}

/**
 * 1,000 idle sockets from 1,000 loopback addresses, then 1,000 from one: meanwhile H reconnects
 * (an admission with the right secret) and C keeps A and B. C's log gets a bounded number of
 * refusal lines (10 per 10 s, then one summary), not one per socket.
 */
async function socketFloods(env: Env): Promise<void> {
  const floods: Array<{ what: string; from: (i: number) => string }> = [
    { what: '1,000 idle sockets from 1,000 addresses', from: (i) => `127.2.${i >> 8}.${i & 255}` },
    { what: '1,000 idle sockets from one address', from: () => '127.0.0.3' },
  ]
  for (const flood of floods) {
    const what = `socket flood: ${flood.what}`
    env.report.extra.unknownClients++
    const linesBefore = await refusalLines(env.log)
    const started = Date.now()
    const sockets: Socket[] = []
    try {
      await env.h.disconnect()
      for (let i = 0; i < 1000; i += 50) {
        const batch = await Promise.all(Array.from({ length: 50 }, (_, j) => idleSocket(env.c.address, flood.from(i + j))))
        for (const s of batch) if (s !== undefined) sockets.push(s)
        if (i === 500) {
          // Halfway through: an admission with the right secret must still succeed.
          try {
            await env.h.connect(env.c.address, env.secret)
          } catch (err) {
            env.fail(what, `an admission with the right secret failed during the flood: ${err instanceof Error ? err.message : String(err)}`)
          }
        }
      }
      if (env.h.connection?.open !== true) env.fail(what, 'the admitted connection did not survive the flood')
      await healthy(env, what)
    } finally {
      for (const s of sockets) s.destroy()
    }
    await reconnected(env, what).catch(() => {})
    await env.c.waitForPeers(3, 15_000).catch(() => env.fail(what, 'C did not count H again after the flood'))
    const lines = (await refusalLines(env.log)) - linesBefore
    const allowed = 11 * (Math.ceil((Date.now() - started) / 10_000) + 2)
    env.report.log(`${what}: ${lines} refusal log lines in ${Date.now() - started} ms`)
    if (lines > allowed) env.fail(what, `C logged ${lines} refusals (at most ${allowed} expected: rate-limited)`)
  }
}

/** Resolves once `socket` drains or closes, leaving no listener behind. */
async function drainedOrClosed(socket: Socket): Promise<void> {
  const done = new AbortController()
  try {
    await Promise.race([once(socket, 'drain', { signal: done.signal }), once(socket, 'close', { signal: done.signal })])
  } finally {
    done.abort()
  }
}

/**
 * An admitted peer (a fresh identity: identities are free to make) opens 1,100 streams and
 * finishes none: the first 16 start a blob.put whose body never completes (C's request slots for
 * that peer stay busy), the others fill their whole initial window (256 KiB) behind them: 270 MiB
 * offered. C takes what its receive budget covers (64 MiB), refuses the rest with resets, keeps
 * serving A and B, and its memory grows by about the budget, not by what was offered.
 */
async function streamFlood(env: Env): Promise<void> {
  const what = 'hostile peer: 1,100 streams that never finish'
  env.report.extra.hostileCases++
  const before = await env.c.usage()
  let socket: Socket | undefined
  try {
    const admitted = await admitTo(env.c.address, { secret: env.secret })
    socket = admitted.socket
    if (admitted.status !== 0) throw new Error(`refused (status ${admitted.status})`)
    let received = 0
    const refusals = (1100 - 256) * 12
    const answered = new Promise<void>((resolve) => {
      socket!.on('data', (b: Buffer) => {
        received += b.length
        if (received >= refusals) resolve()
      })
    })
    const stalled = Buffer.concat([frame({ v: 1, op: 'blob.put', cipherId: sha256(Buffer.from('never finished')) }), frame({ size: 60 * KiB }), randomBytes(KiB)])
    for (let i = 0; i < 1100 && !socket.destroyed; i++) {
      const payload = i < 16 ? stalled : randomBytes(256 * KiB)
      if (!socket.write(yamux(0, 1, 2 * i + 1, payload.length, payload))) await drainedOrClosed(socket)
    }
    await Promise.race([answered, once(socket, 'close'), new Promise((r) => setTimeout(r, 20_000).unref())])
    const after = await env.c.usage()
    const grown = after.rss - before.rss
    env.report.log(`${what}: C's RSS ${Math.round(before.rss / 2 ** 20)} MiB before, ${Math.round(after.rss / 2 ** 20)} MiB after (${Math.round(grown / 2 ** 20)} MiB more; peak ${Math.round(after.maxRss / 2 ** 20)} MiB); ${received} bytes of answers`)
    if (socket.destroyed) env.fail(what, 'C closed the connection instead of refusing the streams beyond its limits')
    else if (received < refusals) env.fail(what, `C answered ${received} bytes, fewer than its ${1100 - 256} refusals take`)
    if (grown > 160 * 2 ** 20) env.fail(what, `C's memory grew by ${Math.round(grown / 2 ** 20)} MiB for 270 MiB offered (budget: 64 MiB per connection)`)
    await healthy(env, what)
  } catch (err) {
    env.fail(what, `the flood failed: ${err instanceof Error ? err.message : String(err)}`)
  } finally {
    socket?.destroy()
  }
}
