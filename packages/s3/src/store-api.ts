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

/** The dcas server methods the gateway calls. */
export interface GatewayServer {
  store(key: string, data: AsyncIterable<Uint8Array>, options?: GatewayStoreOptions): Promise<GatewayStoreResult>
  /** A new version of `key` made of the chunks of `sources`' current versions, in order: no chunk bytes copied. */
  compose(key: string, sources: string[], options?: GatewayStoreOptions): Promise<GatewayStoreResult>
  read(key: string, options?: { offset?: number; length?: number; signal?: AbortSignal }): Readable
  stat(key: string): Promise<GatewayObject>
  has(key: string): Promise<boolean>
  list(options?: { prefix?: string; limit?: number; after?: string }): Promise<GatewayObject[]>
  delete(key: string, options?: { signal?: AbortSignal }): Promise<unknown>
}
