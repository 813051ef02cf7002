import { InvalidOptionsError } from './errors.js'

/** What `store` accepts: bytes, a string (UTF-8), a Node `Readable`, or an (async) iterable of bytes. */
export type StoreData = Uint8Array | string | AsyncIterable<Uint8Array | string> | Iterable<Uint8Array>

/** Normalizes {@link StoreData} to an async iterable of byte buffers, without buffering. */
export async function* toByteStream(data: StoreData): AsyncGenerator<Uint8Array> {
  if (typeof data === 'string') {
    yield Buffer.from(data, 'utf8')
  } else if (data instanceof Uint8Array) {
    yield data
  } else if (typeof (data as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' || typeof (data as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for await (const piece of data as AsyncIterable<Uint8Array | string>) {
      if (typeof piece === 'string') yield Buffer.from(piece, 'utf8')
      else if (piece instanceof Uint8Array) yield piece
      else throw new InvalidOptionsError(`data must yield Uint8Array or string pieces, got ${typeof piece}`)
    }
  } else {
    throw new InvalidOptionsError('data must be a Uint8Array, a string, a Readable or an (async) iterable of Uint8Array')
  }
}
