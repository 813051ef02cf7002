// Shared by the TCP transport tests: transports cleaned up after each test, and
// the listener's inbound errors as awaitable events.
import { afterEach } from 'vitest'
import {
  createIdentity,
  type Connection,
  type NodeIdentity,
  type P2PError,
  tcpTransport,
  type TcpTransport,
  type TcpTransportInit,
} from '../src/index.js'

/** A listening TCP transport with its observed inbound connections and errors. */
export interface Listener {
  transport: TcpTransport
  address: string
  identity: NodeIdentity
  /** Connections handed to the handler, in order. */
  accepted: Connection[]
  /** Resolves with the next connection handed to the handler. */
  nextConnection(): Promise<Connection>
  /** Resolves with the next inbound error reported by the listener. */
  nextInboundError(): Promise<P2PError>
}

const open: TcpTransport[] = []

afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()))
})

/** A TCP transport closed after the test. */
export async function transport(init: Partial<TcpTransportInit> = {}): Promise<TcpTransport> {
  const t = tcpTransport({ identity: init.identity ?? (await createIdentity()), ...init })
  open.push(t)
  return t
}

function queue<T>(): { push(value: T): void; next(): Promise<T> } {
  const values: T[] = []
  const waiters: ((value: T) => void)[] = []
  return {
    push(value) {
      const waiter = waiters.shift()
      if (waiter === undefined) values.push(value)
      else waiter(value)
    },
    next() {
      const value = values.shift()
      return value === undefined ? new Promise((resolve) => waiters.push(resolve)) : Promise.resolve(value)
    },
  }
}

/** A transport listening on 127.0.0.1, port 0. */
export async function listener(init: Partial<TcpTransportInit> = {}): Promise<Listener> {
  const identity = init.identity ?? (await createIdentity())
  const errors = queue<P2PError>()
  const connections = queue<Connection>()
  const accepted: Connection[] = []
  const t = await transport({
    ...init,
    identity,
    onInboundError: (error, remote) => {
      init.onInboundError?.(error, remote)
      errors.push(error)
    },
  })
  const address = await t.listen('127.0.0.1:0', (connection) => {
    accepted.push(connection)
    connections.push(connection)
  })
  return { transport: t, address, identity, accepted, nextConnection: () => connections.next(), nextInboundError: () => errors.next() }
}

/** Writes `data` on a new stream, half-closes, and returns what the remote echoed back. */
export async function roundTrip(connection: Connection, data: Uint8Array): Promise<Buffer> {
  const stream = await connection.openStream()
  await stream.write(data)
  await stream.closeWrite()
  const chunks: Uint8Array[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** Echoes every stream the remote opens on `connection`, until it closes. */
export function echo(connection: Connection): void {
  void (async () => {
    for await (const stream of connection.incoming) {
      void (async () => {
        try {
          for await (const chunk of stream) await stream.write(chunk)
          await stream.closeWrite()
        } catch {
          stream.reset()
        }
      })()
    }
  })()
}
