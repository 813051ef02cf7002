// The node's live status: server-sent events read with fetch (so the session goes in a header, as on
// every other request), reconnecting with backoff while the node is away.
import type { NodeStatus } from '../../src/status.js'
import { authHeaders, failureOf } from './api.js'

/** How the live view stands. */
export type LiveState = 'connecting' | 'live' | 'lost'

/** Watches the status until the returned function is called. */
export function watchStatus(onStatus: (status: NodeStatus) => void, onState: (state: LiveState) => void): () => void {
  const stop = new AbortController()
  let delay = 1000
  const run = async (): Promise<void> => {
    while (!stop.signal.aborted) {
      try {
        const res = await fetch('/v1/events', { headers: { ...authHeaders(), accept: 'text/event-stream' }, signal: stop.signal, cache: 'no-store' })
        if (!res.ok || res.body === null) {
          const failure = await failureOf(res)
          if (failure.status === 401) return // logged out: the app shows the login
          throw failure
        }
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
        let buffer = ''
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          buffer += value
          let end: number
          while ((end = buffer.indexOf('\n\n')) !== -1) {
            const block = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            const lines = block.split('\n')
            if (!lines.includes('event: status')) continue
            const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n')
            onStatus(JSON.parse(data) as NodeStatus)
            onState('live')
            delay = 1000
          }
        }
      } catch {
        if (stop.signal.aborted) return
      }
      onState('lost')
      await new Promise((resolve) => setTimeout(resolve, delay))
      delay = Math.min(delay * 2, 10_000)
    }
  }
  onState('connecting')
  void run()
  return () => stop.abort()
}
