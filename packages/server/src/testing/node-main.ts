// The child side of spawnNode(): starts one server and answers requests over IPC.
import { createServer } from '../server.js'
import { dataDigest, digestOf, generateData } from './data.js'
import type { Logger } from '../logger.js'
import { decodeChildOptions, FORWARDED_EVENTS, type ChildLogLevel, type EventMessage, type RequestMessage, type ResponseMessage } from './protocol.js'

const send = (message: ResponseMessage | EventMessage): void => {
  process.send?.(message)
}

const options = decodeChildOptions(process.env.DCAS_NODE_OPTIONS ?? '{}')
const server = createServer({ ...options, ...(process.env.DCAS_NODE_LOG === undefined ? {} : { logger: stderrLogger(process.env.DCAS_NODE_LOG as ChildLogLevel) }) })

for (const event of FORWARDED_EVENTS) {
  server.on(event, (data: unknown) => send({ event, data }))
}

/** One line per message on stderr, at `level` and above: time, level, message, fields (errors as their message). */
function stderrLogger(level: ChildLogLevel): Logger {
  const levels: ChildLogLevel[] = ['debug', 'info', 'warn', 'error']
  const line =
    (name: ChildLogLevel) =>
    (fields: object, message?: string): void => {
      if (levels.indexOf(name) < levels.indexOf(level)) return
      const flat = JSON.stringify(fields, (_, v: unknown) => (v instanceof Error ? `${v.name}: ${v.message}` : v))
      process.stderr.write(`${new Date().toISOString()} ${name} ${message ?? ''} ${flat}\n`)
    }
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') }
}

async function handle(request: RequestMessage['request']): Promise<unknown> {
  switch (request.op) {
    case 'store': {
      const start = performance.now()
      const result = await server.store(request.key, generateData(request.size, request.seed))
      const ms = performance.now() - start
      if (result.sha256 !== (await dataDigest(request.size, request.seed))) throw new Error('the store reported another digest than the data it was given')
      return { ...result, ms }
    }
    case 'storeText':
      return server.store(request.key, request.text)
    case 'read': {
      const start = performance.now()
      const range = { ...(request.offset === undefined ? {} : { offset: request.offset }), ...(request.length === undefined ? {} : { length: request.length }) }
      const digest = await digestOf(server.read(request.key, range))
      return { ...digest, ms: performance.now() - start }
    }
    case 'delete':
      return server.delete(request.key)
    case 'has':
      return server.has(request.key)
    case 'stat':
      return server.stat(request.key)
    case 'list':
      return server.list(request)
    case 'peers':
      return server.peers()
    case 'waitForPeers':
      return server.waitForPeers(request.count, { signal: AbortSignal.timeout(request.timeout ?? 30_000) })
    case 'waitForSync':
      return server.waitForSync()
    case 'placementStatus':
      return server.placementStatus()
    case 'waitForPlacement':
      return server.waitForPlacement(request.timeout === undefined ? {} : { signal: AbortSignal.timeout(request.timeout) })
    case 'drain':
      return server.drain(request.timeout === undefined ? {} : { signal: AbortSignal.timeout(request.timeout) })
    case 'usage':
      return { rss: process.memoryUsage().rss, maxRss: process.resourceUsage().maxRSS * 1024, heapUsed: process.memoryUsage().heapUsed }
    case 'scrub':
      return server.scrub(request.audit === undefined ? {} : { audit: request.audit })
    case 'close':
      await server.close()
      setImmediate(() => process.exit(0))
      return undefined
  }
}

process.on('message', (message: RequestMessage) => {
  handle(message.request).then(
    (result) => send({ id: message.id, ok: true, result }),
    (err: unknown) => {
      const e = err as { code?: string; name?: string; message?: string; details?: unknown }
      send({ id: message.id, ok: false, error: { message: e.message ?? String(err), ...(e.code === undefined ? {} : { code: e.code }), ...(e.name === undefined ? {} : { name: e.name }), ...(e.details === undefined ? {} : { details: e.details }) } })
    },
  )
})
process.on('disconnect', () => {
  void server.close().finally(() => process.exit(0))
})

try {
  await server.start()
  send({ event: 'ready', nodeId: server.nodeId, address: server.address })
} catch (err) {
  send({ event: 'fatal', message: err instanceof Error ? err.message : String(err) })
  process.exit(1)
}
