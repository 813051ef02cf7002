// The remote process dies or freezes mid-stream: the local side gets a typed
// error within the dead-peer timeout instead of hanging.
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import type { Stream } from '../src/index.js'
import { transport } from './tcp-helpers.js'

const secret = 'dead peer test secret'
const keepAliveInterval = 250
const deadPeerTimeout = 2_000
// Spawning the child (tsx compiles it) can take seconds on a loaded machine: the bounds asserted are on the failure itself.
const testTimeout = 30_000
const peerScript = fileURLToPath(new URL('./tcp-peer.ts', import.meta.url))

let child: ChildProcess | undefined
afterEach(() => {
  child?.kill('SIGKILL')
  child = undefined
})

/** Starts tcp-peer.ts in a child process and resolves to its listen address. */
async function startPeer(): Promise<string> {
  child = spawn(process.execPath, ['--import', 'tsx', peerScript], {
    env: { ...process.env, DCAS_TEST_SECRET: secret },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string]
  return (JSON.parse(line) as { address: string }).address
}

/** Opens a stream the peer fills, and reads from it until at least `bytes` arrived. */
async function midStream(address: string, bytes: number): Promise<AsyncIterator<Uint8Array>> {
  const local = await transport({ clusterSecret: secret, keepAliveInterval, deadPeerTimeout })
  const connection = await local.dial(address)
  const stream: Stream = await connection.openStream()
  await stream.write(new Uint8Array([1]))
  const reader = stream[Symbol.asyncIterator]()
  for (let received = 0; received < bytes; ) {
    const next: IteratorResult<Uint8Array> = await reader.next()
    if (next.done === true) throw new Error('the stream ended early')
    received += next.value.length
  }
  return reader
}

/** Reads on until the stream fails; resolves to the error (or to `undefined` if it ended cleanly). */
async function failure(reader: AsyncIterator<Uint8Array>): Promise<unknown> {
  try {
    while ((await reader.next()).done !== true);
    return undefined
  } catch (err) {
    return err
  }
}

describe('a dead remote', () => {
  it('killed mid-stream, fails the local reader with a typed error within the dead-peer timeout', { timeout: testTimeout }, async () => {
    const reader = await midStream(await startPeer(), 1024 * 1024)
    const killed = performance.now()
    child!.kill('SIGKILL')
    const error = await failure(reader)
    expect((error as { code?: unknown }).code).toMatch(/^ERR_(CONNECTION_CLOSED|PEER_TIMEOUT|STREAM_RESET)$/)
    expect(performance.now() - killed).toBeLessThan(deadPeerTimeout)
  })

  it('frozen mid-stream (SIGSTOP), fails the local reader with ERR_PEER_TIMEOUT after the dead-peer timeout', { timeout: testTimeout }, async () => {
    const reader = await midStream(await startPeer(), 1024 * 1024)
    const stopped = performance.now()
    child!.kill('SIGSTOP')
    const error = await failure(reader)
    expect(error).toMatchObject({ code: 'ERR_PEER_TIMEOUT' })
    // Bytes already in the kernel's buffers still arrive, so allow one timeout plus scheduling slack.
    expect(performance.now() - stopped).toBeLessThan(2 * deadPeerTimeout + keepAliveInterval)
  })
})
