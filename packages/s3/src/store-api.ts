// The part of a dcas `Server` (from `@dcas/server`) the gateway uses, declared structurally: any
// object with these methods can back a gateway, and a `Server` is one.
import type { Readable } from 'node:stream'

/** Object metadata kept in the object's encrypted manifest: lowercase names, string values. */
export type ObjectMetadata = Record<string, string>

/** What a store or compose resolved to. */
export interface GatewayStoreResult {
  key: string
  size: number
  /** Lowercase hex SHA-256 of the whole object. */
  sha256: string
  version: number
}

/** An object's current version, as `stat` and `list` give it. */
export interface GatewayObject {
  key: string
  size: number
  sha256: string
  version: number
  /** Milliseconds since the epoch. */
  updatedAt: number
  metadata: ObjectMetadata
}

/** Options of {@link GatewayServer.store} and {@link GatewayServer.compose}. */
export interface GatewayStoreOptions {
  signal?: AbortSignal
  /** Kept with the new version; a function is called once the data has been read to its end. */
  metadata?: ObjectMetadata | (() => ObjectMetadata)
  /** Checked under the key's lock right before the commit: `false` fails the store with `ERR_PRECONDITION`, leaving nothing. */
  precondition?: (current: GatewayObject | undefined) => boolean
}

/** Options of {@link GatewayOpenObject.read}: a byte range (default: the whole version). */
export interface GatewayReadOptions {
  offset?: number
  length?: number
  signal?: AbortSignal
}

/** One version of an object, from {@link GatewayServer.open}: its stat, and reads of exactly that version. */
export interface GatewayOpenObject {
  /** That version's state. */
  readonly stat: GatewayObject
  /** A `Readable` of that version, or of a range of it, however the key changed since it was opened. */
  read(options?: GatewayReadOptions): Readable
  /** Lets that version's chunks go; called once its reads are over. */
  close(): void
}

/** The dcas server methods the gateway calls. */
export interface GatewayServer {
  store(key: string, data: AsyncIterable<Uint8Array>, options?: GatewayStoreOptions): Promise<GatewayStoreResult>
  /** A new version of `key` made of the chunks of `sources`' current versions, in order: no chunk bytes copied. */
  compose(key: string, sources: string[], options?: GatewayStoreOptions): Promise<GatewayStoreResult>
  /** Resolves `key` once, to its current version: an answer's headers and body come from the same version. */
  open(key: string, options?: { signal?: AbortSignal }): Promise<GatewayOpenObject>
  stat(key: string): Promise<GatewayObject>
  has(key: string): Promise<boolean>
  list(options?: { prefix?: string; limit?: number; after?: string }): Promise<GatewayObject[]>
  delete(key: string, options?: { signal?: AbortSignal }): Promise<unknown>
}
