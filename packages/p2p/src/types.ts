/** Options accepted by every asynchronous call. */
export interface AbortOptions {
  /** Aborts the call; it then rejects with `ERR_ABORTED` (or the signal's reason). */
  signal?: AbortSignal
}

/**
 * One bidirectional, flow-controlled byte stream inside a {@link Connection}.
 *
 * Reading: iterate it (`for await (const chunk of stream)`); the iteration ends
 * when the remote half-closes, and throws a typed error (`ERR_STREAM_RESET`,
 * `ERR_CONNECTION_CLOSED`, `ERR_PEER_TIMEOUT`) when the stream dies. A stream
 * may be iterated once. Not reading holds the remote writer within this
 * stream's receive window.
 */
export interface Stream extends AsyncIterable<Uint8Array> {
  /** Stream id, unique within its connection. */
  readonly id: number
  /**
   * Sends bytes. Resolves once they are accepted within the remote's window,
   * so awaiting each write keeps memory bounded (backpressure). Rejects after
   * `closeWrite`, a reset, or when the connection dies.
   */
  write(data: Uint8Array, options?: AbortOptions): Promise<void>
  /** Half-closes: no more writes; the remote's iteration ends after the last byte. */
  closeWrite(options?: AbortOptions): Promise<void>
  /** Abandons the stream in both directions; the remote sees `ERR_STREAM_RESET`. */
  reset(reason?: Error): void
}

/** An authenticated, multiplexed connection to one peer. */
export interface Connection {
  /** The remote node id: lowercase hex SHA-256 of its certificate's SPKI. */
  readonly remoteNodeId: string
  /** The remote address as `host:port` (or the in-memory address). */
  readonly remoteAddress: string
  /** Whether we dialled (`outbound`) or accepted (`inbound`) it. */
  readonly direction: 'inbound' | 'outbound'
  /** `false` once the connection is closing or closed. */
  readonly open: boolean
  /** Opens a new stream to the remote. */
  openStream(options?: AbortOptions): Promise<Stream>
  /**
   * Streams opened by the remote, in the order they arrived. Streams that
   * arrive before anyone iterates are queued (bounded by the stream limit).
   * Iterate it once; the iteration ends when the connection closes.
   */
  readonly incoming: AsyncIterable<Stream>
  /** Graceful close (go-away): no new streams, open streams may finish. */
  close(options?: AbortOptions): Promise<void>
  /** Immediate close: every open stream fails with `reason`. */
  abort(reason?: Error): void
  /** Resolves when the connection has closed: `undefined` after a clean close, else the error. */
  readonly closed: Promise<Error | undefined>
}

/** Called for each admitted inbound connection. */
export type ConnectionHandler = (connection: Connection) => void

/** How nodes reach each other: listen, dial, close. */
export interface Transport {
  /** This node's id: lowercase hex SHA-256 of its certificate's SPKI. */
  readonly nodeId: string
  /** The bound listen address (`host:port`), once `listen` has resolved. */
  readonly address: string | undefined
  /**
   * Starts accepting connections on `address` (`host:port`, port 0 for any).
   * `handler` receives each connection after it was admitted.
   * Resolves to the bound address.
   */
  listen(address: string, handler: ConnectionHandler, options?: AbortOptions): Promise<string>
  /** Dials `address` and resolves to an admitted connection, or rejects (`ERR_PEER_UNAUTHORIZED`, `ERR_DIAL_FAILED`…). */
  dial(address: string, options?: AbortOptions): Promise<Connection>
  /** Stops listening and closes every connection. */
  close(options?: AbortOptions): Promise<void>
}
