// How long a request to a peer may take, and what else ends it: the caller's signal, and for
// background work the server's shutdown.
import { timeoutSignal } from './signals.js'

/** The signals of requests to peers. */
export class Deadlines {
  readonly #timeout: number
  readonly #shutdown: AbortSignal

  /** `timeout`: ms for one request; `shutdown`: aborts background work when the server closes. */
  constructor(timeout: number, shutdown: AbortSignal) {
    this.#timeout = timeout
    this.#shutdown = shutdown
  }

  /** The server's shutdown signal. */
  get shutdown(): AbortSignal {
    return this.#shutdown
  }

  /** The signal of one request: its timeout, the caller's signal, and for `background` work the shutdown. */
  request(caller?: AbortSignal, background = false): AbortSignal {
    return timeoutSignal(this.#timeout, caller, background ? this.#shutdown : undefined)
  }

  /** The signal of one request of background work. */
  background(): AbortSignal {
    return this.request(undefined, true)
  }
}
