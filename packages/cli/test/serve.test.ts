// `dcas serve` as a process: its log, api.json, signals, and what the other commands say
// when the node is missing, stopped, or refused by its peer.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { initNode, type InitOptions, type NodeStatus } from '../src/index.js'
import { NODE_FLAGS } from '@dcas/server'
import { BIN, COMMAND, dcas, serve, stopAll, tempDir } from './helpers.js'

let dir: { path: string; cleanup: () => Promise<void> }

beforeEach(async () => {
  dir = await tempDir()
})

afterEach(async () => {
  await stopAll()
  await dir.cleanup()
})

/** Initialises a node in this process (init itself is tested in init.test.ts and flow.test.ts). */
async function init(name: string, extra: Partial<InitOptions> = {}): Promise<string> {
  const root = join(dir.path, name)
  await initNode({ root, listen: '127.0.0.1:0', http: '127.0.0.1:0', ...extra })
  return root
}

const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  )

describe('dcas serve', () => {
  it('logs JSON lines off a terminal, writes api.json with mode 0600, and on SIGTERM closes gracefully and removes it', async () => {
    const root = await init('a')
    const node = await serve(root)
    expect(node.lines.every((l) => typeof l.level === 'number' && typeof l.time === 'number')).toBe(true)
    expect(node.lines.find((l) => l.msg === 'ready')).toMatchObject({ api: node.api.url, nodeId: node.api.nodeId, address: node.api.address })
    expect(node.api.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(node.api.token).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect((await stat(join(root, 'api.json'))).mode & 0o777).toBe(0o600)

    expect(await node.stop('SIGTERM')).toEqual({ code: 0, signal: null })
    expect(node.lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['signal received; closing gracefully (send it again to exit at once)', 'shutting down', 'stopped']))
    expect(await exists(join(root, 'api.json'))).toBe(false)
    const after = await dcas(['status', '--root', root])
    expect(after.code).toBe(4)
    expect(after.stderr).toContain('no dcas node is running')
  })

  it.runIf(process.platform === 'linux')('runs, as the installed command, in Node.js started with the flags of a dcas process', async () => {
    const launcher = (await readFile(COMMAND, 'utf8')).split('\n')
    expect(launcher[0]).toBe('#!/bin/sh')
    expect(launcher[1]).toBe(`':' //; exec node ${NODE_FLAGS.join(' ')} "$0" "$@"`)
    const root = await init('a')
    const node = await serve(root)
    const argv = (await readFile(`/proc/${node.child.pid}/cmdline`, 'utf8')).split('\0')
    expect(argv.slice(1, 1 + NODE_FLAGS.length)).toEqual([...NODE_FLAGS])
    expect(argv.slice(1 + NODE_FLAGS.length, 4 + NODE_FLAGS.length)).toEqual([COMMAND, 'serve', '--root'])
    expect(await node.stop('SIGTERM')).toEqual({ code: 0, signal: null })
  })

  it('lets a command whose reader went away (dcas status | head) end quietly, with exit code 0', async () => {
    const root = await init('a')
    await serve(root)
    const child = spawn(process.execPath, [BIN, 'status', '--root', root], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.destroy() // the reader is gone before the command writes: its first write fails with EPIPE
    let stderr = ''
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
    expect(stderr).toBe('')
    expect(code).toBe(0)
  })

  it('makes a command run while the node starts wait for it, rather than say none runs', async () => {
    const root = await init('a')
    const node = await serve(root)
    const ready = await readFile(join(root, 'api.json'), 'utf8')
    // As the file stands while \`dcas serve\` starts (this test process plays the starting node)…
    await writeFile(join(root, 'api.json'), JSON.stringify({ pid: process.pid, startedAt: Date.now(), starting: true }))
    const ls = spawn(process.execPath, [BIN, 'ls', '--root', root], { stdio: ['ignore', 'pipe', 'pipe'] })
    const code = new Promise<number | null>((resolve) => ls.once('close', resolve))
    let stderr = ''
    await new Promise<void>((resolve) =>
      ls.stderr.on('data', (b: Buffer) => {
        stderr += b.toString()
        if (stderr.includes(`waiting for the node to start (dcas serve, pid ${process.pid})`)) resolve()
      }),
    )
    // …until it is ready.
    await writeFile(join(root, 'api.json'), ready)
    expect(await code).toBe(0)
    expect(node.child.exitCode).toBeNull()
  })

  it('says none runs when the node that was starting died before it was ready', async () => {
    const root = await init('a')
    const dead = spawn(process.execPath, ['-e', '0'])
    await new Promise((resolve) => dead.once('exit', resolve))
    await writeFile(join(root, 'api.json'), JSON.stringify({ pid: dead.pid, startedAt: Date.now(), starting: true }))
    const ls = await dcas(['ls', '--root', root])
    expect(ls.code).toBe(4)
    expect(ls.stderr).toContain('no dcas node is running')
  })

  it('closes gracefully, once it is up, on a SIGTERM that comes while it starts, leaving no api.json', async () => {
    const root = await init('a')
    const child = spawn(process.execPath, [BIN, 'serve', '--root', root], { stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    let stdout = ''
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()))
    // The mark of a node starting is written once the node listens for signals.
    await vi.waitFor(() => expect(JSON.parse(readFileSync(join(root, 'api.json'), 'utf8'))).toHaveProperty('pid', child.pid), { timeout: 20_000, interval: 5 })
    child.kill('SIGTERM')
    expect(await exited).toEqual({ code: 0, signal: null })
    expect(stdout).toContain('"msg":"stopped"')
    expect(await exists(join(root, 'api.json'))).toBe(false)
  })

  it('closes gracefully on SIGINT too', async () => {
    const node = await serve(await init('a'))
    expect(await node.stop('SIGINT')).toEqual({ code: 0, signal: null })
    expect(node.lines.some((l) => l.msg === 'stopped')).toBe(true)
  })

  it('refuses to start a second node on the same directory, with exit code 4', async () => {
    const root = await init('a')
    const first = await serve(root)
    const second = await dcas(['serve', '--root', root])
    expect(second.code).toBe(4)
    expect(second.stderr).toContain(`a dcas node is already running for ${root} (pid ${first.child.pid}`)
    expect((await dcas(['status', '--root', root])).code).toBe(0)
  })

  it('after a crash (api.json left behind), commands say the node is not running, and serve starts again', async () => {
    const root = await init('a')
    const node = await serve(root)
    await node.stop('SIGKILL')
    expect(await exists(join(root, 'api.json'))).toBe(true)
    const ls = await dcas(['ls', '--root', root])
    expect(ls.code).toBe(4)
    expect(ls.stderr).toContain('is not running: its API refused the connection')
    expect(ls.stderr).toContain(`dcas serve --root ${root}`)
    const again = await serve(root)
    expect(again.api.token).not.toBe(node.api.token)
    expect((await dcas(['ls', '--root', root])).code).toBe(0)
  })

  it('exits 4 naming the address when its peer or HTTP address is taken', async () => {
    const a = await serve(await init('a'))
    const rootB = await init('b')
    const httpTaken = await dcas(['serve', '--root', rootB, '--http', a.api.url.replace('http://', '')])
    expect(httpTaken.code).toBe(4)
    expect(httpTaken.stderr).toContain(`cannot serve the HTTP API on ${a.api.url.replace('http://', '')}`)
    expect(httpTaken.stderr).toContain('pick another port with --http')
    const peerTaken = await dcas(['serve', '--root', rootB, '--listen', a.api.address])
    expect(peerTaken.code).toBe(4)
    expect(peerTaken.stderr).toContain(`cannot listen for peers on ${a.api.address}`)
  })

  it('refuses an HTTP address other than 127.0.0.1, with exit code 2', async () => {
    const result = await dcas(['serve', '--root', await init('a'), '--http', '0.0.0.0:0'])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('the HTTP API listens on 127.0.0.1 only')
  })

  it('says which peer refused this node and what to do, in its log, in status and after a put', async () => {
    const a = await serve(await init('a'))
    const rootC = await init('c', { clusterSecret: 'not the secret node a has' })
    const c = await serve(rootC, ['--peer', a.api.address])
    const line = await c.waitFor((l) => l.code === 'ERR_PEER_UNAUTHORIZED')
    expect(line.msg).toContain(`peer ${a.api.address} refused this node: it does not share this node's cluster secret`)
    expect(line.msg).toContain('dcas init --join')

    const status = JSON.parse((await dcas(['status', '--root', rootC, '--json'])).stdout) as NodeStatus
    expect(status.peers).toEqual([{ address: a.api.address, connected: false, error: expect.objectContaining({ code: 'ERR_PEER_UNAUTHORIZED' }) as unknown }])
    const text = await dcas(['status', '--root', rootC])
    expect(text.stdout).toContain('not connected (ERR_PEER_UNAUTHORIZED)')
    expect(text.stdout).toContain('do not share a cluster secret')

    // With no peer it can reach, a put fails (write quorum 1 by default) and says why.
    const put = await dcas(['put', '--root', rootC, 'k', '-'], { input: 'data' })
    expect(put.code).toBe(6)
    expect(put.stderr).toContain('0 could be reached; nothing was stored')
  })
})

describe('dcas put with a write quorum', () => {
  it('exits 6, storing nothing, when fewer placed holders can be reached than the quorum', async () => {
    const root = await init('a')
    await serve(root)
    const put = await dcas(['put', '--root', root, 'k', '-'], { input: 'not stored' })
    expect(put.code).toBe(6)
    expect(put.stderr).toContain('needs 1 of its 0 placed holders, but 0 could be reached; nothing was stored')
    expect(put.stderr).toContain('a node alone stores with --write-quorum 0')
    expect((await dcas(['get', '--root', root, 'k'])).code).toBe(5)
  })

  it('stores on this node only with --write-quorum 0, and warns of a configured peer it never reached', async () => {
    const root = await init('a', { writeQuorum: 0, peers: ['127.0.0.1:9'] })
    await serve(root)
    const put = await dcas(['put', '--root', root, 'k', '-'], { input: 'here only' })
    expect(put.code).toBe(0)
    expect(put.stdout).toContain('on 0 peers')
    expect(put.stderr).toContain('warning: peer 127.0.0.1:9 holds no copy yet')
    expect((await dcas(['get', '--root', root, 'k'])).stdout).toBe('here only')
  })
})
