// The objects pages: a folder view of the keys (by `/`), searched and sorted, thousands of rows
// rendered only as they scroll into view; and one object's details, download and delete.
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks'
import type { NodeStatus } from '../../src/status.js'
import { formatBytes, plural, shortId } from '../../src/format.js'
import { deleteObject, download, listFolder, searchKeys, statObject, type Entry, type ObjectStat } from './api.js'
import type { Uploads } from './upload.js'
import { ErrorNote, PageTitle, Time, href } from './ui.js'
import { useVirtualRows } from './virtual.js'

type Row = { kind: 'folder'; prefix: string } | { kind: 'object'; entry: Entry }
type SortBy = 'name' | 'size' | 'modified'

/** Rows loaded for sorting by size or time, at most. */
const SORT_ALL_CAP = 100_000
const ROW_HEIGHT = 40

interface Listing {
  rows: Row[]
  done: boolean
  loading: boolean
  error: unknown
  /** Keys a search has looked at so far. */
  scanned: number
}

const EMPTY: Listing = { rows: [], done: false, loading: false, error: undefined, scanned: 0 }

/** The folder `prefix` (or the keys under it that contain `search`), a page at a time. */
function useListing(prefix: string, search: string): Listing & { loadMore: () => void; reload: () => void } {
  const [state, setState] = useState<Listing>(EMPTY)
  const run = useRef<{ controller: AbortController; next?: string; busy: boolean; done: boolean } | undefined>(undefined)
  const loadMore = useCallback(() => {
    const r = run.current
    if (r === undefined || r.busy || r.done) return
    r.busy = true
    setState((s) => ({ ...s, loading: true }))
    const page = search === '' ? listFolder(prefix, r.next, r.controller.signal) : searchKeys(prefix, search, r.next, r.controller.signal)
    page.then(
      (p) => {
        if (r !== run.current) return
        r.busy = false
        r.next = p.next
        r.done = p.next === undefined
        const add: Row[] = [...(p.prefixes ?? []).map((f): Row => ({ kind: 'folder', prefix: f })), ...p.objects.map((e): Row => ({ kind: 'object', entry: e }))]
        setState((s) => ({ rows: add.length === 0 ? s.rows : [...s.rows, ...add], done: r.done, loading: false, error: undefined, scanned: s.scanned + (p.scanned ?? 0) }))
      },
      (err: unknown) => {
        if (r !== run.current || r.controller.signal.aborted) return
        r.busy = false
        r.done = true
        setState((s) => ({ ...s, loading: false, done: true, error: err }))
      },
    )
  }, [prefix, search])
  const reload = useCallback(() => {
    run.current?.controller.abort()
    run.current = { controller: new AbortController(), busy: false, done: false }
    setState(EMPTY)
    loadMore()
  }, [loadMore])
  useEffect(() => {
    reload()
    return () => run.current?.controller.abort()
  }, [reload])
  return { ...state, loadMore, reload }
}

const nameOf = (row: Row, prefix: string): string => (row.kind === 'folder' ? row.prefix : row.entry.key).slice(prefix.length)

function sortRows(rows: Row[], by: SortBy, descending: boolean): Row[] {
  const folders = rows.filter((r) => r.kind === 'folder')
  const objects = rows.filter((r): r is Extract<Row, { kind: 'object' }> => r.kind === 'object')
  // By name the node's order stands (keys in UTF-8 byte order); the others sort what is loaded.
  if (by === 'size') objects.sort((a, b) => a.entry.size - b.entry.size)
  if (by === 'modified') objects.sort((a, b) => a.entry.updatedAt - b.entry.updatedAt)
  if (descending) {
    objects.reverse()
    if (by === 'name') folders.reverse()
  }
  return [...folders, ...objects]
}

function Breadcrumbs({ prefix }: { prefix: string }) {
  const parts = prefix.split('/').slice(0, -1)
  return (
    <nav aria-label="Folder" class="crumbs">
      <ol>
        <li>
          <a href={href({ page: 'objects', prefix: '' })} aria-current={prefix === '' ? 'page' : undefined}>
            All objects
          </a>
        </li>
        {parts.map((part, i) => {
          const to = `${parts.slice(0, i + 1).join('/')}/`
          return (
            <li key={to}>
              <a href={href({ page: 'objects', prefix: to })} aria-current={to === prefix ? 'page' : undefined}>
                {part === '' ? '(empty)' : part}
              </a>
            </li>
          )
        })}
      </ol>
    </nav>
  )
}

function SortHeader({ by, label, sort, setSort }: { by: SortBy; label: string; sort: { by: SortBy; descending: boolean }; setSort: (s: { by: SortBy; descending: boolean }) => void }) {
  const active = sort.by === by
  return (
    <div role="columnheader" class={`col-${by}`} aria-sort={active ? (sort.descending ? 'descending' : 'ascending') : 'none'}>
      <button type="button" class="link" onClick={() => setSort({ by, descending: active ? !sort.descending : false })}>
        {label}
        <span aria-hidden="true">{active ? (sort.descending ? ' ▼' : ' ▲') : ''}</span>
      </button>
    </div>
  )
}

export function ObjectsPage({ prefix, status, uploads }: { prefix: string; status: NodeStatus | undefined; uploads: Uploads }) {
  const [query, setQuery] = useState('')
  const [search, setSearch] = useState('')
  const [sort, setSort] = useState<{ by: SortBy; descending: boolean }>({ by: 'name', descending: false })
  const listing = useListing(prefix, search)
  const rows = useMemo(() => sortRows(listing.rows, sort.by, sort.descending), [listing.rows, sort])
  const scroller = useRef<HTMLDivElement>(null)
  const virtual = useVirtualRows(rows.length, () => scroller.current, ROW_HEIGHT)
  const items = virtual.getVirtualItems()
  const lastShown = items.at(-1)?.index ?? -1
  const focusIndex = useRef<number | undefined>(undefined)

  // The search runs a moment after typing stops.
  useEffect(() => {
    const t = setTimeout(() => setSearch(query.trim()), 250)
    return () => clearTimeout(t)
  }, [query])
  // More rows when the view nears the end (a search goes on until it finds some), all of them to sort by size or time.
  const wantAll = sort.by !== 'name' && listing.rows.length < SORT_ALL_CAP
  useEffect(() => {
    if (listing.loading || listing.done) return
    if (wantAll || lastShown >= rows.length - 30) listing.loadMore()
  }, [listing.loading, listing.done, lastShown, rows.length, wantAll, listing.loadMore])
  // Objects stored or deleted meanwhile (here, by the CLI, or another tab): the first page reloads by
  // itself; a longer listing offers a refresh rather than lose the reader's place.
  const seen = useRef<number | undefined>(undefined)
  const [stale, setStale] = useState(false)
  const count = status?.objects.objects
  useEffect(() => {
    if (count === undefined) return
    if (seen.current !== undefined && seen.current !== count) {
      if (listing.rows.length <= 1000 && search === '') listing.reload()
      else setStale(true)
    }
    seen.current = count
  }, [count])
  useEffect(() => uploads.onStored(() => listing.reload()), [uploads, listing.reload])

  // Arrow keys, Home and End move between rows, bringing the next one into view.
  const onKeyDown = (e: KeyboardEvent): void => {
    const row = (e.target as HTMLElement).closest<HTMLElement>('[data-index]')
    if (row === null) return
    const at = Number(row.dataset.index)
    const to = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: rows.length - 1, PageDown: at + 10, PageUp: at - 10 }[e.key]
    if (to === undefined) return
    e.preventDefault()
    const target = Math.max(0, Math.min(rows.length - 1, to))
    focusIndex.current = target
    virtual.scrollToIndex(target)
    scroller.current?.querySelector<HTMLElement>(`[data-index="${target}"] a`)?.focus()
  }
  useLayoutEffect(() => {
    if (focusIndex.current === undefined) return
    const link = scroller.current?.querySelector<HTMLElement>(`[data-index="${focusIndex.current}"] a`)
    if (link !== null && link !== undefined) {
      link.focus()
      focusIndex.current = undefined
    }
  })

  const where = prefix === '' ? 'all objects' : prefix
  const summary = listing.error !== undefined ? '' : search !== '' ? `${rows.length} ${rows.length === 1 ? 'match' : 'matches'}${listing.done ? '' : ' so far'}, ${plural(listing.scanned, 'key')} searched` : `${rows.length} ${rows.length === 1 ? 'entry' : 'entries'}${listing.done ? '' : ' loaded'}`
  return (
    <>
      <PageTitle>Objects</PageTitle>
      <Breadcrumbs prefix={prefix} />
      <div class="toolbar">
        <form role="search" onSubmit={(e) => (e.preventDefault(), setSearch(query.trim()))}>
          <label for="search">Search in {prefix === '' ? 'all objects' : 'this folder'}</label>
          <input id="search" type="search" value={query} onInput={(e) => setQuery(e.currentTarget.value)} placeholder="part of a key" />
        </form>
        <a class="button" href={href({ page: 'upload', prefix })}>
          Upload here
        </a>
      </div>
      <p role="status" class="summary">
        {listing.loading && rows.length === 0 ? 'Loading…' : summary}
        {sort.by !== 'name' && !listing.done && rows.length >= SORT_ALL_CAP ? ` (sorted among the first ${SORT_ALL_CAP})` : ''}
        {stale && (
          <>
            {' '}
            Objects changed since this list was loaded.{' '}
            <button
              type="button"
              class="link"
              onClick={() => {
                setStale(false)
                listing.reload()
              }}
            >
              Refresh
            </button>
          </>
        )}
      </p>
      <ErrorNote error={listing.error} />
      <div role="table" class="objects" aria-label={`Objects in ${where}`} aria-rowcount={rows.length + 1}>
        <div role="rowgroup">
          <div role="row" class="row head" aria-rowindex={1}>
            <SortHeader by="name" label="Name" sort={sort} setSort={setSort} />
            <SortHeader by="size" label="Size" sort={sort} setSort={setSort} />
            <SortHeader by="modified" label="Modified" sort={sort} setSort={setSort} />
          </div>
        </div>
        <div role="rowgroup" class="scroller" ref={scroller} onKeyDown={onKeyDown}>
          <div class="spacer" style={{ height: `${virtual.getTotalSize()}px` }}>
            {items.map((item) => {
              const row = rows[item.index]!
              const name = nameOf(row, prefix)
              return (
                <div role="row" class="row" key={item.key} data-index={item.index} aria-rowindex={item.index + 2} style={{ transform: `translateY(${item.start}px)`, height: `${item.size}px` }}>
                  <div role="cell" class="col-name">
                    {row.kind === 'folder' ? (
                      <a href={href({ page: 'objects', prefix: row.prefix })} class="folder">
                        {name}
                      </a>
                    ) : (
                      <a href={href({ page: 'object', key: row.entry.key })}>{name === '' ? '(this folder’s own key)' : name}</a>
                    )}
                  </div>
                  <div role="cell" class="col-size">
                    {row.kind === 'object' ? formatBytes(row.entry.size) : 'folder'}
                  </div>
                  <div role="cell" class="col-modified">
                    {row.kind === 'object' ? <Time at={row.entry.updatedAt} /> : ''}
                  </div>
                </div>
              )
            })}
          </div>
        </div>
      </div>
      {!listing.done && rows.length > 0 && (
        <button type="button" onClick={listing.loadMore} disabled={listing.loading}>
          {listing.loading ? 'Loading…' : 'Load more'}
        </button>
      )}
      {listing.done && rows.length === 0 && listing.error === undefined && <p>{search === '' ? 'This folder is empty.' : 'No key here contains that.'}</p>}
    </>
  )
}

/** Who holds a copy of an object: this node, and the peers that acknowledged its version. */
function Holders({ stat, status }: { stat: ObjectStat; status: NodeStatus | undefined }) {
  const peers = status?.peers ?? []
  const missing = peers.filter((p) => p.nodeId === undefined || !stat.replicas.includes(p.nodeId))
  const describe = (id: string): string => {
    const peer = peers.find((p) => p.nodeId === id)
    return `${shortId(id)}${peer?.address === undefined ? '' : ` (${peer.address})`}${peer === undefined ? '' : peer.connected ? ', connected' : ', not connected now'}`
  }
  return (
    <>
      <dt>Holders</dt>
      <dd>
        <ul class="plain">
          <li>this node{status === undefined ? '' : ` (${shortId(status.nodeId)})`}: the owner</li>
          {stat.replicas.map((id) => (
            <li key={id}>{describe(id)}</li>
          ))}
        </ul>
        {missing.length > 0 && <p class="warn">Not yet on {missing.map((p) => p.address ?? shortId(p.nodeId ?? '')).join(', ')}: it gets a copy when it catches up (see Status).</p>}
      </dd>
    </>
  )
}

export function ObjectPage({ objectKey, status, onDeleted }: { objectKey: string; status: NodeStatus | undefined; onDeleted: (message: string) => void }) {
  const [stat, setStat] = useState<ObjectStat>()
  const [error, setError] = useState<unknown>()
  const [note, setNote] = useState<string>()
  const [busy, setBusy] = useState(false)
  const dialog = useRef<HTMLDialogElement>(null)
  const folder = objectKey.slice(0, objectKey.lastIndexOf('/') + 1)
  const name = objectKey.slice(folder.length)
  useEffect(() => {
    const controller = new AbortController()
    statObject(objectKey, controller.signal).then(setStat, (err: unknown) => controller.signal.aborted || setError(err))
    return () => controller.abort()
  }, [objectKey])

  const onDownload = async (): Promise<void> => {
    setError(undefined)
    setNote(undefined)
    try {
      const { sha256, size } = await download(objectKey)
      setNote(`Download started: ${formatBytes(size)}. Its SHA-256 is ${sha256}; check the saved file with: sha256sum "${name}"`)
    } catch (err) {
      setError(err)
    }
  }
  const onDelete = async (): Promise<void> => {
    setBusy(true)
    try {
      const result = await deleteObject(objectKey)
      dialog.current?.close()
      onDeleted(`Deleted “${objectKey}” on this node and ${plural(result.acknowledged.length, 'peer')}${result.pending.length > 0 ? `; ${plural(result.pending.length, 'peer')} not reached get the delete when they reconnect` : ''}.`)
      location.hash = href({ page: 'objects', prefix: folder })
    } catch (err) {
      dialog.current?.close()
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  return (
    <>
      <PageTitle>
        <span class="wrap">{objectKey}</span>
      </PageTitle>
      <p>
        <a href={href({ page: 'objects', prefix: folder })}>Back to {folder === '' ? 'all objects' : folder}</a>
      </p>
      <ErrorNote error={error} />
      {stat === undefined && error === undefined && <p role="status">Loading…</p>}
      {stat !== undefined && (
        <>
          <dl>
            <dt>Size</dt>
            <dd>
              {formatBytes(stat.size)} ({stat.size.toLocaleString('en')} bytes)
            </dd>
            <dt>SHA-256</dt>
            <dd>
              <code class="wrap" data-testid="sha256">
                {stat.sha256}
              </code>
            </dd>
            <dt>Version</dt>
            <dd>{stat.version}</dd>
            <dt>Chunks</dt>
            <dd>{stat.chunks}</dd>
            <dt>Updated</dt>
            <dd>
              <Time at={stat.updatedAt} />
            </dd>
            <Holders stat={stat} status={status} />
          </dl>
          <div class="actions">
            <button type="button" onClick={() => void onDownload()}>
              Download
            </button>
            <button type="button" class="danger" onClick={() => dialog.current?.showModal()}>
              Delete
            </button>
          </div>
          {note !== undefined && <p role="status">{note}</p>}
        </>
      )}
      <dialog ref={dialog} aria-labelledby="confirm-title" aria-describedby="confirm-text">
        <h2 id="confirm-title">Delete “{objectKey}”?</h2>
        <p id="confirm-text">It is removed from this node and from every peer. This cannot be undone.</p>
        <div class="actions">
          <button type="button" class="danger" disabled={busy} onClick={() => void onDelete()}>
            Delete
          </button>
          <button type="button" onClick={() => dialog.current?.close()} autoFocus>
            Cancel
          </button>
        </div>
      </dialog>
    </>
  )
}
