/**
 * @packageDocumentation
 *
 * The dcas server: store, read and delete across peers, with encrypted
 * replicas, healing and catch-up.
 *
 * @example
 * ```ts
 * import { createServer } from '@dcas/server'
 *
 * const server = createServer({ root: './data-7000', listen: '127.0.0.1:7000', bootstrap: ['127.0.0.1:8080'], clusterSecret: 'shared secret' })
 * await server.start()
 * const { replicas } = await server.store('item_0', 'big conten0')
 * for await (const chunk of server.read('item_0')) process.stdout.write(chunk)
 * await server.delete('item_0')
 * await server.close()
 * ```
 */

export { createServer } from './server.js'
export { NODE_FLAGS } from './node-flags.js'
export type {
  BehindEvent,
  DeleteResult,
  DialErrorEvent,
  DrainOptions,
  DrainResult,
  HealedEvent,
  ListEntry,
  ListOptions,
  ComposeSource,
  ObjectStat,
  OpenObject,
  PeerInfo,
  PlacementStatus,
  ReadOptions,
  RepairDoneEvent,
  ScrubOptions,
  ScrubResult,
  Server,
  ServerEvents,
  ServerOptions,
  SignalOptions,
  StoreOptions,
  StoreResult,
} from './server.js'
export type { ObjectMetadata } from './manifest.js'
export { MAX_METADATA_BYTES, MAX_METADATA_NAME_BYTES } from './manifest.js'
export type { HolderLimits } from './replica-space.js'
export type { StoreData } from './source.js'
export { everyPeer, rendezvous } from './placement.js'
export type { Member, PlacementPolicy } from './placement.js'
export { MAX_WEIGHT_RATIO, RendezvousTable, weightsOf } from './rendezvous.js'
export type { WeightedNode } from './rendezvous.js'
export type { PeerRecord } from './peer-record.js'
export type { Logger } from './logger.js'
export { silentLogger } from './logger.js'
export { anySignal, timeoutSignal } from './signals.js'
export { fixedSizeChunker, DEFAULT_CHUNK_SIZE } from './chunker.js'
export type { Chunker } from './chunker.js'
export { assertValidKey, MAX_KEY_BYTES } from './key.js'
export {
  AbortedError,
  ClosedError,
  InvalidKeyError,
  InvalidOptionsError,
  NotFoundError,
  PeerError,
  PreconditionError,
  QuorumError,
  TooLargeError,
  SERVER_ERROR_CODES,
  ServerError,
  UnauthenticatedError,
  UnavailableError,
} from './errors.js'
export type { QuorumDetails, ServerErrorCode } from './errors.js'
