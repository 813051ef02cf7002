// The web console of a dcas node: logs in (API token, or a one-time link from `dcas open`), then
// shows the node's status live, its objects, uploads and downloads. Served by the node itself.
import { render } from 'preact'
import { useCallback, useEffect, useRef, useState } from 'preact/hooks'
import type { NodeStatus } from '../../src/status.js'
import { shortId } from '../../src/format.js'
import { ApiFailure, LOGGED_OUT, login, logout, request, session } from './api.js'
import { watchStatus, type LiveState } from './live.js'
import { ObjectPage, ObjectsPage } from './objects.js'
import { StatusPage } from './status.js'
import { createUploads, UploadPage, type Uploads } from './upload.js'
import { ErrorNote, href, parseRoute, type Route } from './ui.js'

/** The login form: the API token from `DIR/api.json`. */
function Login({ onDone, notice }: { onDone: () => void; notice: string | undefined }) {
  const [token, setToken] = useState('')
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  const field = useRef<HTMLInputElement>(null)
  // The token can be typed (or pasted) at once.
  useEffect(() => field.current?.focus(), [])
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault()
    setBusy(true)
    setError(undefined)
    try {
      await login({ token: token.trim() })
      onDone()
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  return (
    <main class="login">
      <h1>dcas console</h1>
      {notice !== undefined && <p role="status">{notice}</p>}
      <form onSubmit={(e) => void submit(e)}>
        <label for="token">API token</label>
        <input ref={field} id="token" name="token" type="password" autoComplete="off" spellcheck={false} required value={token} onInput={(e) => setToken(e.currentTarget.value)} aria-describedby="token-help" />
        <p id="token-help" class="help">
          The <code>token</code> in the node's <code>DIR/api.json</code> (new each time the node starts). Or run <code>dcas open</code>: it opens the console with a one-time link.
        </p>
        <button type="submit" disabled={busy}>
          Log in
        </button>
        <ErrorNote error={error} />
      </form>
    </main>
  )
}

const LIVE_TEXT: Record<LiveState, string> = { connecting: 'Connecting…', live: 'Live', lost: 'Node unreachable: retrying…' }

/** Announces peers that come and go, for screen readers (and as a line on screen). */
function peerChanges(before: NodeStatus | undefined, after: NodeStatus): string | undefined {
  if (before === undefined) return undefined
  const name = (p: NodeStatus['peers'][number]): string => p.address ?? shortId(p.nodeId ?? '?')
  const was = new Map(before.peers.map((p) => [p.nodeId ?? p.address, p.connected]))
  const changes = after.peers.filter((p) => was.has(p.nodeId ?? p.address) && was.get(p.nodeId ?? p.address) !== p.connected).map((p) => `Peer ${name(p)} ${p.connected ? 'connected' : 'disconnected'}`)
  return changes.length === 0 ? undefined : changes.join('. ')
}

function Console({ onLogout }: { onLogout: () => void }) {
  const [route, setRoute] = useState<Route>(() => parseRoute(location.hash))
  const [status, setStatus] = useState<NodeStatus>()
  const [live, setLive] = useState<LiveState>('connecting')
  const [announcement, setAnnouncement] = useState('')
  const [uploads] = useState<Uploads>(() => createUploads())
  const last = useRef<NodeStatus | undefined>(undefined)

  useEffect(() => {
    const onHash = (): void => setRoute(parseRoute(location.hash))
    window.addEventListener('hashchange', onHash)
    return () => window.removeEventListener('hashchange', onHash)
  }, [])
  useEffect(
    () =>
      watchStatus((s) => {
        const change = peerChanges(last.current, s)
        if (change !== undefined) setAnnouncement(change)
        last.current = s
        setStatus(s)
      }, setLive),
    [],
  )
  const nav = (to: Route['page'], label: string, target: Route) => (
    <a href={href(target)} aria-current={route.page === to || (to === 'objects' && route.page === 'object') ? 'page' : undefined}>
      {label}
    </a>
  )
  const folder = route.page === 'objects' || route.page === 'upload' ? route.prefix : ''
  return (
    <>
      <a class="skip" href="#main">
        Skip to the page
      </a>
      <header>
        <span class="brand">dcas</span>
        <nav aria-label="Pages">
          {nav('status', 'Status', { page: 'status' })}
          {nav('objects', 'Objects', { page: 'objects', prefix: folder })}
          {nav('upload', 'Upload', { page: 'upload', prefix: folder })}
        </nav>
        <span class={`live live-${live}`} role="status">
          {LIVE_TEXT[live]}
          {status !== undefined && <span class="node"> · node {shortId(status.nodeId)}</span>}
        </span>
        <button type="button" class="link" onClick={() => void logout().finally(onLogout)}>
          Log out
        </button>
      </header>
      <p class="announce" aria-live="polite">
        {announcement}
      </p>
      <main id="main">
        {route.page === 'status' && <StatusPage status={status} />}
        {route.page === 'objects' && <ObjectsPage key={route.prefix} prefix={route.prefix} status={status} uploads={uploads} />}
        {route.page === 'object' && <ObjectPage key={route.key} objectKey={route.key} status={status} onDeleted={setAnnouncement} />}
        {route.page === 'upload' && <UploadPage prefix={route.prefix} uploads={uploads} />}
      </main>
    </>
  )
}

/** Spends a one-time login link (`#login=CODE`) and drops it from the address bar and history. */
async function loginFromLink(): Promise<string | undefined> {
  const m = /^#login=([\w-]+)$/.exec(location.hash)
  if (m === null) return undefined
  history.replaceState(null, '', `${location.pathname}#/status`)
  try {
    await login({ link: m[1]! })
    return undefined
  } catch (err) {
    return err instanceof ApiFailure ? err.message : String(err)
  }
}

function App() {
  const [state, setState] = useState<'checking' | 'out' | 'in'>('checking')
  const [notice, setNotice] = useState<string>()
  const check = useCallback(async () => {
    const failed = await loginFromLink()
    if (failed !== undefined) setNotice(failed)
    if (session.get() === null) return setState('out')
    try {
      await request('GET', '/v1/session')
      setState('in')
    } catch {
      setState('out')
    }
  }, [])
  useEffect(() => {
    void check()
    const onLoggedOut = (e: Event): void => {
      setNotice((e as CustomEvent<string>).detail)
      setState('out')
    }
    const onHash = (): void => {
      if (location.hash.startsWith('#login=')) void check()
    }
    window.addEventListener(LOGGED_OUT, onLoggedOut)
    window.addEventListener('hashchange', onHash)
    return () => {
      window.removeEventListener(LOGGED_OUT, onLoggedOut)
      window.removeEventListener('hashchange', onHash)
    }
  }, [check])
  if (state === 'checking') return <p role="status">Loading…</p>
  if (state === 'out')
    return (
      <Login
        notice={notice}
        onDone={() => {
          setNotice(undefined)
          setState('in')
        }}
      />
    )
  return (
    <Console
      onLogout={() => {
        setNotice('Logged out.')
        setState('out')
      }}
    />
  )
}

render(<App />, document.getElementById('app')!)
