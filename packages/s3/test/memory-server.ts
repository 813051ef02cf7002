// An in-memory stand-in for the server contract (store with metadata and precondition, compose),
// used until @dcas/server carries it; it keeps whole objects in memory, for small test objects only.
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import type { GatewayObject, GatewayServer, GatewayStoreOptions, GatewayStoreResult, ObjectMetadata } from '../src/store-api.js'

interface Entry extends GatewayObject {
  bytes: Buffer
}

const err = (code: string, message: string): Error => Object.assign(new Error(message), { code })

export function memoryServer(): GatewayServer & { keys(): string[] } {
  const objects = new Map<string, Entry>()
  const statOf = (e: Entry): GatewayObject => ({ key: e.key, size: e.size, sha256: e.sha256, version: e.version, updatedAt: e.updatedAt, metadata: { ...e.metadata } })
  const commit = (key: string, bytes: Buffer, options: GatewayStoreOptions): GatewayStoreResult => {
    const current = objects.get(key)
    if (options.precondition !== undefined && !options.precondition(current === undefined ? undefined : statOf(current))) throw err('ERR_PRECONDITION', 'precondition failed')
    const metadata: ObjectMetadata = typeof options.metadata === 'function' ? options.metadata() : (options.metadata ?? {})
    const entry: Entry = { key, bytes, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), version: (current?.version ?? 0) + 1, updatedAt: Date.now(), metadata: { ...metadata } }
    objects.set(key, entry)
    return { key, size: entry.size, sha256: entry.sha256, version: entry.version }
  }
  const sorted = (): string[] => [...objects.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  return {
    keys: sorted,
    async store(key, data, options = {}) {
      const pieces: Buffer[] = []
      for await (const piece of data) pieces.push(Buffer.from(piece))
      return commit(key, Buffer.concat(pieces), options)
    },
    async compose(key, sources, options = {}) {
      const bytes = sources.map((s) => {
        const e = objects.get(s)
        if (e === undefined) throw err('ERR_NOT_FOUND', `no object "${s}"`)
        return e.bytes
      })
      return Promise.resolve(commit(key, Buffer.concat(bytes), options))
    },
    read(key, options = {}) {
      const e = objects.get(key)
      if (e === undefined) return new Readable({ read() { this.destroy(err('ERR_NOT_FOUND', `no object "${key}"`)) } })
      const offset = options.offset ?? 0
      const end = options.length === undefined ? e.size : offset + options.length
      return Readable.from([e.bytes.subarray(offset, end)])
    },
    async stat(key) {
      const e = objects.get(key)
      if (e === undefined) throw err('ERR_NOT_FOUND', `no object "${key}"`)
      return Promise.resolve(statOf(e))
    },
    async has(key) {
      return Promise.resolve(objects.has(key))
    },
    async list(options = {}) {
      const prefix = options.prefix ?? ''
      const after = options.after === undefined ? undefined : Buffer.from(options.after)
      const out: GatewayObject[] = []
      for (const key of sorted()) {
        if (!key.startsWith(prefix) || (after !== undefined && Buffer.compare(Buffer.from(key), after) <= 0)) continue
        out.push(statOf(objects.get(key)!))
        if (out.length >= (options.limit ?? 1000)) break
      }
      return Promise.resolve(out)
    },
    async delete(key) {
      if (!objects.delete(key)) throw err('ERR_NOT_FOUND', `no object "${key}"`)
      return Promise.resolve({})
    },
  }
}
