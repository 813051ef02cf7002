// The compliance suite every Transport passes: admission outcomes, streams both
// ways, integrity, concurrency, half-close, reset, backpressure, go-away, abort,
// signals. It runs inside vitest (an optional peer dependency).
import { createHash } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import type { Connection, Stream, Transport } from '../types.js'

/** How a test asks for a transport. */
export interface TransportInit {
  /** Use the identity made by `createNodeId()` with this id; absent, make a fresh identity. */
  nodeId?: string
  /** Cluster secret: transports given the same one admit each other. */
  clusterSecret?: Uint8Array
  /** Node ids admitted without the secret. */
  allowList?: readonly string[]
}

/** Options of {@link transportTests}. */
export interface TransportTestOptions {
  /** Names the `describe` block. */
  name: string
  /**
   * Creates a fresh transport with its own identity. Called several times per
   * test; the suite closes every transport it created after each test.
   */
  createTransport(init: TransportInit): Transport | Promise<Transport>
  /**
   * Makes a new node identity and returns its node id, for a later
   * `createTransport({ nodeId })`: two peers that admit each other only through
   * their allow-lists must know each other's id before either exists.
   */
  createNodeId(): string | Promise<string>
  /** An address to listen on with port 0 (e.g. `127.0.0.1:0`). */
  listenAddress: string
  /** An address nothing listens on, for a failed dial. */
  unreachableAddress: string
  /** Bytes of the large transfer (default 32 MiB). */
  largeTransferBytes?: number
  /** Most bytes a writer may get accepted while its reader reads nothing (default 1 MiB). */
  maxUnreadBytes?: number
  /** Per-test timeout in ms (default 30 000). */
  timeout?: number
  /** Called after each test, once its transports are closed (e.g. to remove directories). */
  cleanup?(): void | Promise<void>
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Reads a stream to its end. Small payloads only: tests of large ones hash instead. */
async function readText(stream: Stream): Promise<string> {
  let text = ''
  for await (const chunk of stream) text += decoder.decode(chunk, { stream: true })
  return text + decoder.decode()
}

async function sendText(stream: Stream, text: string): Promise<void> {
  await stream.write(encoder.encode(text))
  await stream.closeWrite()
}

async function errorOf(promise: Promise<unknown>): Promise<{ code?: unknown }> {
  try {
    await promise
  } catch (err) {
    return err as { code?: unknown }
  }
  throw new Error('expected a rejection')
}

/** Deterministic pseudo-random bytes (xorshift), so both sides can check a transfer. */
function patternChunk(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length)
  let x = seed | 1
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

/** A queue of what a listener's handler received, to await in order. */
class Inbox<T> {
  private readonly items: T[] = []
  private readonly waiters: ((item: T) => void)[] = []
  readonly received: T[] = []

  push = (item: T): void => {
    this.received.push(item)
    const waiter = this.waiters.shift()
    if (waiter !== undefined) waiter(item)
    else this.items.push(item)
  }

  next(): Promise<T> {
    const item = this.items.shift()
    if (item !== undefined) return Promise.resolve(item)
    return new Promise((resolve) => this.waiters.push(resolve))
  }
}

/**
 * Registers the transport compliance tests (vitest `describe`/`it`) for the
 * transport built by `options.createTransport`. Run it in a test file:
 *
 * @example
 * ```ts
 * import { randomBytes } from 'node:crypto'
 * import { createMemoryNetwork, memoryTransport } from '@dcas/p2p'
 * import { transportTests } from '@dcas/p2p/testing'
 *
 * const network = createMemoryNetwork()
 * transportTests({
 *   name: 'memory',
 *   createTransport: (init) => memoryTransport({ network, ...init }),
 *   createNodeId: () => randomBytes(32).toString('hex'),
 *   listenAddress: 'node:0',
 *   unreachableAddress: 'nowhere:1',
 * })
 * ```
 */
export function transportTests(options: TransportTestOptions): void {
  const largeBytes = options.largeTransferBytes ?? 32 * 1024 * 1024
  const maxUnread = options.maxUnreadBytes ?? 1024 * 1024
  const timeout = options.timeout ?? 30_000

  describe(`transport compliance: ${options.name}`, () => {
    const transports: Transport[] = []

    afterEach(async () => {
      const all = transports.splice(0)
      // Streams a failed test left open must not hang the clean-up: abort what does not close at once.
      await Promise.allSettled(all.map((t) => t.close({ signal: AbortSignal.timeout(1000) })))
      await options.cleanup?.()
    })

    async function create(init: TransportInit = {}): Promise<Transport> {
      const transport = await options.createTransport(init)
      transports.push(transport)
      return transport
    }

    const secret = (byte: number): Uint8Array => new Uint8Array(32).fill(byte)

    /** A listening and a dialling transport sharing a secret, connected. */
    async function connected(): Promise<{ dialler: Transport; listener: Transport; outbound: Connection; inbound: Connection; address: string }> {
      const listener = await create({ clusterSecret: secret(1) })
      const dialler = await create({ clusterSecret: secret(1) })
      const inbox = new Inbox<Connection>()
      const address = await listener.listen(options.listenAddress, inbox.push)
      const outbound = await dialler.dial(address)
      const inbound = await inbox.next()
      return { dialler, listener, outbound, inbound, address }
    }

    /** A connected pair with one stream opened by the dialler, `first` written on it and the stream accepted. */
    async function withStream(first: string): Promise<{ outbound: Connection; inbound: Connection; stream: Stream; remote: Stream }> {
      const { outbound, inbound } = await connected()
      const stream = await outbound.openStream()
      await stream.write(encoder.encode(first))
      const remote = (await inbound.incoming[Symbol.asyncIterator]().next()).value as Stream
      return { outbound, inbound, stream, remote }
    }

    describe('dial, listen and admission', () => {
      it('connects two transports that share the cluster secret, each seeing the other\'s node id', { timeout }, async () => {
        const { dialler, listener, outbound, inbound, address } = await connected()
        expect(listener.address).toBe(address)
        expect(outbound.remoteNodeId).toBe(listener.nodeId)
        expect(inbound.remoteNodeId).toBe(dialler.nodeId)
        expect(outbound.remoteAddress).toBe(address)
        expect(outbound.direction).toBe('outbound')
        expect(inbound.direction).toBe('inbound')
        expect(outbound.open && inbound.open).toBe(true)
      })

      it('gives node ids of 64 lowercase hex characters', { timeout }, async () => {
        const transport = await create({ clusterSecret: secret(1) })
        expect(transport.nodeId).toMatch(/^[0-9a-f]{64}$/)
      })

      it('refuses a dialler with a different cluster secret, and delivers nothing to the listener', { timeout }, async () => {
        const listener = await create({ clusterSecret: secret(1) })
        const stranger = await create({ clusterSecret: secret(2) })
        const friend = await create({ clusterSecret: secret(1) })
        const inbox = new Inbox<Connection>()
        const address = await listener.listen(options.listenAddress, inbox.push)
        expect((await errorOf(stranger.dial(address))).code).toBe('ERR_PEER_UNAUTHORIZED')
        await friend.dial(address)
        const first = await inbox.next()
        expect(first.remoteNodeId).toBe(friend.nodeId)
        expect(inbox.received.map((c) => c.remoteNodeId)).not.toContain(stranger.nodeId)
      })

      it('admits peers without a secret through the allow-lists of both sides', { timeout }, async () => {
        const diallerId = await options.createNodeId()
        const listenerId = await options.createNodeId()
        const listener = await create({ nodeId: listenerId, allowList: [diallerId] })
        const dialler = await create({ nodeId: diallerId, allowList: [listenerId] })
        expect([dialler.nodeId, listener.nodeId]).toEqual([diallerId, listenerId])
        const inbox = new Inbox<Connection>()
        const address = await listener.listen(options.listenAddress, inbox.push)
        const connection = await dialler.dial(address)
        expect(connection.remoteNodeId).toBe(listenerId)
        expect((await inbox.next()).remoteNodeId).toBe(diallerId)
      })

      it('refuses a dialler missing from the allow-list of a listener without a secret', { timeout }, async () => {
        const listener = await create({})
        const dialler = await create({ allowList: [listener.nodeId] })
        const address = await listener.listen(options.listenAddress, () => {})
        expect((await errorOf(dialler.dial(address))).code).toBe('ERR_PEER_UNAUTHORIZED')
      })

      it('refuses a listener the dialler does not admit', { timeout }, async () => {
        const dialler = await create({ clusterSecret: secret(3) })
        const listener = await create({ clusterSecret: secret(4), allowList: [dialler.nodeId] })
        const friend = await create({ clusterSecret: secret(4) })
        const inbox = new Inbox<Connection>()
        const address = await listener.listen(options.listenAddress, inbox.push)
        expect((await errorOf(dialler.dial(address))).code).toBe('ERR_PEER_UNAUTHORIZED')
        await friend.dial(address)
        expect((await inbox.next()).remoteNodeId).toBe(friend.nodeId)
        expect(inbox.received.map((c) => c.remoteNodeId)).not.toContain(dialler.nodeId)
      })

      it('fails a dial to an address nothing listens on with ERR_DIAL_FAILED', { timeout }, async () => {
        const dialler = await create({ clusterSecret: secret(1) })
        expect((await errorOf(dialler.dial(options.unreachableAddress))).code).toBe('ERR_DIAL_FAILED')
      })

      it('rejects an address that is not host:port with ERR_INVALID_ADDRESS', { timeout }, async () => {
        const transport = await create({ clusterSecret: secret(1) })
        expect((await errorOf(transport.dial('no port here'))).code).toBe('ERR_INVALID_ADDRESS')
        expect((await errorOf(transport.listen('no port here', () => {}))).code).toBe('ERR_INVALID_ADDRESS')
      })

      it('rejects dial and listen with ERR_ABORTED when the signal is already aborted', { timeout }, async () => {
        const { dialler, address } = await connected()
        const signal = AbortSignal.abort()
        expect((await errorOf(dialler.dial(address, { signal }))).code).toBe('ERR_ABORTED')
        const other = await create({ clusterSecret: secret(1) })
        expect((await errorOf(other.listen(options.listenAddress, () => {}, { signal }))).code).toBe('ERR_ABORTED')
      })
    })

    describe('streams', () => {
      it('opens streams from either side and carries bytes both ways', { timeout }, async () => {
        const { outbound, inbound } = await connected()
        const accepted = inbound.incoming[Symbol.asyncIterator]()
        const fromDialler = await outbound.openStream()
        await sendText(fromDialler, 'ping')
        const atListener = (await accepted.next()).value as Stream
        expect(await readText(atListener)).toBe('ping')
        await sendText(atListener, 'pong')
        expect(await readText(fromDialler)).toBe('pong')

        const acceptedBack = outbound.incoming[Symbol.asyncIterator]()
        const fromListener = await inbound.openStream()
        await sendText(fromListener, 'hello')
        const atDialler = (await acceptedBack.next()).value as Stream
        expect(await readText(atDialler)).toBe('hello')
        await atDialler.closeWrite()
        expect(atDialler.id).not.toBe(atListener.id)
      })

      it('queues streams opened before anyone iterates incoming, in order', { timeout }, async () => {
        const { outbound, inbound } = await connected()
        for (let i = 0; i < 5; i++) {
          await sendText(await outbound.openStream(), `stream ${i}`)
        }
        const texts: string[] = []
        for await (const stream of inbound.incoming) {
          texts.push(await readText(stream))
          await stream.closeWrite()
          if (texts.length === 5) break
        }
        expect(texts).toEqual(['stream 0', 'stream 1', 'stream 2', 'stream 3', 'stream 4'])
      })

      it(`carries ${largeBytes} bytes intact`, { timeout }, async () => {
        const { outbound, inbound } = await connected()
        const chunks = Array.from({ length: 8 }, (_, i) => patternChunk(i + 1, 256 * 1024 + i * 7))
        const sent = createHash('sha256')
        const receiving = (async () => {
          for await (const stream of inbound.incoming) {
            const hash = createHash('sha256')
            let bytes = 0
            for await (const chunk of stream) {
              hash.update(chunk)
              bytes += chunk.length
            }
            await stream.closeWrite()
            return { bytes, digest: hash.digest('hex') }
          }
          throw new Error('no stream arrived')
        })()
        const stream = await outbound.openStream()
        let bytes = 0
        for (let i = 0; bytes < largeBytes; i++) {
          const chunk = chunks[i % chunks.length]!.subarray(0, Math.min(largeBytes - bytes, chunks[i % chunks.length]!.length))
          sent.update(chunk)
          bytes += chunk.length
          await stream.write(chunk)
        }
        await stream.closeWrite()
        expect(await receiving).toEqual({ bytes: largeBytes, digest: sent.digest('hex') })
      })

      it('runs 100 concurrent request/response streams in each direction', { timeout }, async () => {
        const { outbound, inbound } = await connected()
        const failures: unknown[] = []
        const echo = async (connection: Connection): Promise<void> => {
          for await (const stream of connection.incoming) {
            void (async () => {
              await sendText(stream, (await readText(stream)).toUpperCase())
            })().catch((err: unknown) => failures.push(err))
          }
        }
        void echo(outbound).catch((err: unknown) => failures.push(err))
        void echo(inbound).catch((err: unknown) => failures.push(err))
        const ask = async (connection: Connection, i: number): Promise<string> => {
          const stream = await connection.openStream()
          await sendText(stream, `request ${i}`)
          return readText(stream)
        }
        const answers = await Promise.all([
          ...Array.from({ length: 100 }, (_, i) => ask(outbound, i)),
          ...Array.from({ length: 100 }, (_, i) => ask(inbound, i)),
        ])
        expect(answers).toEqual([...Array.from({ length: 100 }, (_, i) => `REQUEST ${i}`), ...Array.from({ length: 100 }, (_, i) => `REQUEST ${i}`)])
        expect(failures).toEqual([])
      })

      it('half-closes: the reader ends after the last byte while the other direction stays open', { timeout }, async () => {
        const { outbound, inbound } = await connected()
        const stream = await outbound.openStream()
        await stream.write(encoder.encode('question'))
        await stream.closeWrite()
        await expect(stream.write(encoder.encode('more'))).rejects.toMatchObject({ code: 'ERR_STREAM_CLOSED' })
        const remote = (await inbound.incoming[Symbol.asyncIterator]().next()).value as Stream
        expect(await readText(remote)).toBe('question')
        await remote.write(encoder.encode('answer, '))
        await remote.write(encoder.encode('in two parts'))
        await remote.closeWrite()
        expect(await readText(stream)).toBe('answer, in two parts')
      })

      it('reset fails the remote side\'s reads and writes with ERR_STREAM_RESET', { timeout }, async () => {
        const { stream, remote } = await withStream('partial')
        const reading = errorOf(readText(remote))
        stream.reset()
        expect((await reading).code).toBe('ERR_STREAM_RESET')
        expect((await errorOf(remote.write(encoder.encode('late')))).code).toBe('ERR_STREAM_RESET')
        expect((await errorOf(stream.write(encoder.encode('late')))).code).toBe('ERR_STREAM_RESET')
      })

      it('lets a stream be iterated only once', { timeout }, async () => {
        const { outbound } = await connected()
        const stream = await outbound.openStream()
        stream[Symbol.asyncIterator]()
        let error: { code?: unknown } | undefined
        try {
          stream[Symbol.asyncIterator]()
        } catch (err) {
          error = err as { code?: unknown }
        }
        expect(error?.code).toBe('ERR_STREAM_CLOSED')
      })

      it(`holds a writer whose reader reads nothing to at most ${maxUnread} bytes, then delivers them all`, { timeout }, async () => {
        const { outbound, inbound } = await connected()
        const accepted = inbound.incoming[Symbol.asyncIterator]()
        const stream = await outbound.openStream()
        const chunk = patternChunk(7, 16 * 1024)
        const total = 4 * maxUnread
        let acceptedBytes = 0
        const writing = (async () => {
          for (let sent = 0; sent < total; sent += chunk.length) {
            await stream.write(chunk)
            acceptedBytes += chunk.length
          }
          await stream.closeWrite()
        })()
        const remote = (await accepted.next()).value as Stream
        // Round trips on a second stream let every byte the writer could push arrive.
        const clock = await outbound.openStream()
        const clockRemote = (await accepted.next()).value as Stream
        const tick = clockRemote[Symbol.asyncIterator]()
        for (let i = 0; i < 20; i++) {
          await clock.write(encoder.encode('t'))
          await tick.next()
        }
        expect(acceptedBytes).toBeGreaterThan(0)
        expect(acceptedBytes).toBeLessThanOrEqual(maxUnread)
        let received = 0
        let mismatches = 0
        for await (const got of remote) {
          for (let i = 0; i < got.length; i++) if (got[i] !== chunk[(received + i) % chunk.length]) mismatches++
          received += got.length
        }
        await writing
        expect(received).toBe(total)
        expect(mismatches).toBe(0)
        await Promise.all([remote.closeWrite(), clock.closeWrite(), clockRemote.closeWrite()])
      })

      it('rejects a write with ERR_ABORTED when its signal aborts while it waits for the window, resetting the stream', { timeout }, async () => {
        const { outbound, inbound } = await connected()
        const stream = await outbound.openStream()
        const controller = new AbortController()
        const blocked = stream.write(new Uint8Array(4 * maxUnread), { signal: controller.signal })
        const remote = (await inbound.incoming[Symbol.asyncIterator]().next()).value as Stream
        const reading = (async () => {
          const iterator = remote[Symbol.asyncIterator]()
          await iterator.next() // bytes are flowing: the write is under way
          controller.abort()
          for (;;) if ((await iterator.next()).done === true) return 'ended cleanly'
        })()
        expect((await errorOf(blocked)).code).toBe('ERR_ABORTED')
        expect((await errorOf(reading)).code).toBe('ERR_STREAM_RESET')
      })

      it('rejects openStream and write with ERR_ABORTED when the signal is already aborted', { timeout }, async () => {
        const { outbound } = await connected()
        const signal = AbortSignal.abort()
        expect((await errorOf(outbound.openStream({ signal }))).code).toBe('ERR_ABORTED')
        const stream = await outbound.openStream()
        expect((await errorOf(stream.write(encoder.encode('x'), { signal }))).code).toBe('ERR_ABORTED')
        expect((await errorOf(stream.closeWrite({ signal }))).code).toBe('ERR_ABORTED')
      })
    })

    describe('closing', () => {
      it('close() sends go-away: no new streams, open ones finish, then both sides close cleanly', { timeout }, async () => {
        const { outbound, inbound, stream, remote } = await withStream('before close')
        const closing = outbound.close()
        expect(outbound.open).toBe(false)
        expect((await errorOf(outbound.openStream())).code).toBe('ERR_CONNECTION_CLOSED')
        // The open stream still works in both directions.
        await sendText(stream, ', still flowing')
        expect(await readText(remote)).toBe('before close, still flowing')
        expect(inbound.open).toBe(false)
        await sendText(remote, 'reply')
        expect(await readText(stream)).toBe('reply')
        await closing
        expect(await outbound.closed).toBeUndefined()
        expect(await inbound.closed).toBeUndefined()
        expect((await errorOf(inbound.openStream())).code).toBe('ERR_CONNECTION_CLOSED')
      })

      it('ends the iteration of incoming when the connection closes', { timeout }, async () => {
        const { outbound, inbound } = await connected()
        const iterating = (async () => {
          let count = 0
          for await (const stream of inbound.incoming) {
            count++
            stream.reset()
          }
          return count
        })()
        await outbound.close()
        expect(await iterating).toBe(0)
      })

      it('abort() fails the open streams on both sides and resolves closed with an error', { timeout }, async () => {
        const { outbound, inbound, stream, remote } = await withStream('x')
        const remoteReading = errorOf(readText(remote))
        const localReading = errorOf(readText(stream))
        outbound.abort(new Error('going down'))
        expect((await remoteReading).code).toBe('ERR_CONNECTION_CLOSED')
        expect((await localReading).code).toBe('ERR_CONNECTION_CLOSED')
        expect((await outbound.closed)?.cause).toMatchObject({ message: 'going down' })
        expect(await inbound.closed).toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
        expect(outbound.open || inbound.open).toBe(false)
      })

      it('close() with an aborted signal aborts the connection and rejects with ERR_ABORTED', { timeout }, async () => {
        const { outbound, inbound } = await withStream('x')
        const controller = new AbortController()
        const closing = outbound.close({ signal: controller.signal })
        controller.abort()
        expect((await errorOf(closing)).code).toBe('ERR_ABORTED')
        expect(await outbound.closed).toMatchObject({ code: 'ERR_ABORTED' })
        expect(await inbound.closed).toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
      })

      it('closing a transport stops its listener and closes its connections', { timeout }, async () => {
        const { listener, dialler, inbound, outbound, address } = await connected()
        await listener.close()
        expect(await inbound.closed).toBeUndefined()
        expect(await outbound.closed).toBeUndefined()
        const code = (await errorOf(dialler.dial(address))).code
        expect(code).toBe('ERR_DIAL_FAILED')
      })
    })
  })
}
