// Messages between a test process and a node child process (see spawn.ts and node-main.ts).
import type { ServerOptions } from '../server.js'

/** How to start the node in the child: server options that survive IPC (no transport, no logger). */
export type ChildServerOptions = Omit<ServerOptions, 'transport' | 'logger' | 'chunker' | 'clusterSecret'> & { clusterSecret?: string }

/** The child's options as JSON text: numbers JSON has no room for (`Infinity`, e.g. `repairRate`) go as `{ "$number": "Infinity" }`. */
export function encodeChildOptions(options: ChildServerOptions): string {
  return JSON.stringify(options, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? { $number: String(value) } : value))
}

/** The options {@link encodeChildOptions} wrote. */
export function decodeChildOptions(text: string): ChildServerOptions {
  return JSON.parse(text, (_key, value: unknown) => {
    if (typeof value === 'object' && value !== null && Object.keys(value).length === 1 && typeof (value as { $number?: unknown }).$number === 'string') return Number((value as { $number: string }).$number)
    return value
  }) as ChildServerOptions
}

/** Levels of the child's log, least severe first. */
export type ChildLogLevel = 'debug' | 'info' | 'warn' | 'error'

export type Request =
  | { op: 'store'; key: string; size: number; seed: string | number }
  | { op: 'storeText'; key: string; text: string }
  | { op: 'read'; key: string; offset?: number; length?: number }
  | { op: 'delete'; key: string }
  | { op: 'has'; key: string }
  | { op: 'stat'; key: string }
  | { op: 'list'; prefix?: string; limit?: number; after?: string }
  | { op: 'peers' }
  | { op: 'waitForPeers'; count: number; timeout?: number }
  | { op: 'waitForSync' }
  | { op: 'placementStatus' }
  | { op: 'waitForPlacement'; timeout?: number }
  | { op: 'drain'; timeout?: number }
  | { op: 'usage' }
  | { op: 'scrub'; audit?: number }
  | { op: 'close' }

export interface RequestMessage {
  id: number
  request: Request
}

export type ResponseMessage = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: { code?: string; name?: string; message: string; details?: unknown } }

/** The server events a node child process passes on. */
export const FORWARDED_EVENTS = ['healed', 'peer:connect', 'peer:disconnect', 'synced', 'node:joined', 'node:lost', 'node:returned', 'repair:done'] as const

export type EventMessage = { event: 'ready'; nodeId: string; address: string } | { event: (typeof FORWARDED_EVENTS)[number]; data: unknown } | { event: 'fatal'; message: string }
