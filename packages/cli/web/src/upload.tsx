// Uploads: files dropped or chosen go to the node one after another (two at a time), each streamed
// from disk with its progress, and each can be cancelled (the node then stores nothing of it). They
// go on while the reader looks at other pages.
import { useEffect, useReducer, useState } from 'preact/hooks'
import type { StoreResult } from '@dcas/server'
import { formatBytes, plural } from '../../src/format.js'
import { ApiFailure, upload } from './api.js'
import { PageTitle, href } from './ui.js'

/** One file being uploaded, or done. */
export interface UploadItem {
  readonly id: number
  readonly key: string
  readonly size: number
  sent: number
  state: 'queued' | 'sending' | 'stored' | 'failed' | 'cancelled'
  result?: StoreResult
  error?: string
  cancel(): void
}

/** The uploads of this tab. */
export interface Uploads {
  readonly items: readonly UploadItem[]
  /** Queues files under `prefix` + each file's name. */
  add(prefix: string, files: Iterable<File>): void
  /** The last upload that ended, said for screen readers: stored, failed or cancelled. */
  readonly message: string
  /** Forgets the finished ones. */
  clear(): void
  /** Calls `listener` on every change; returns the unsubscribe. */
  subscribe(listener: () => void): () => void
  /** Calls `listener` when an object was stored; returns the unsubscribe. */
  onStored(listener: () => void): () => void
}

const AT_ONCE = 2

export function createUploads(): Uploads {
  let items: UploadItem[] = []
  let message = ''
  let nextId = 1
  const listeners = new Set<() => void>()
  const stored = new Set<() => void>()
  let frame = 0
  // Progress comes many times a second: the page redraws once a frame at most.
  const changed = (): void => {
    if (frame !== 0) return
    frame = requestAnimationFrame(() => {
      frame = 0
      for (const l of listeners) l()
    })
  }
  const pump = (): void => {
    const sending = items.filter((i) => i.state === 'sending').length
    const next = items.find((i) => i.state === 'queued')
    if (next === undefined || sending >= AT_ONCE) return
    start(next)
    pump()
  }
  const files = new Map<number, File>()
  const start = (item: UploadItem): void => {
    const file = files.get(item.id)!
    item.state = 'sending'
    const transfer = upload(item.key, file, (sent) => {
      item.sent = sent
      changed()
    })
    item.cancel = () => transfer.cancel()
    transfer.done.then(
      (result) => {
        item.state = 'stored'
        item.sent = item.size
        item.result = result
        message = `Stored ${item.key}`
        for (const l of stored) l()
      },
      (err: unknown) => {
        const aborted = err instanceof ApiFailure && err.code === 'ERR_ABORTED'
        item.state = aborted ? 'cancelled' : 'failed'
        item.error = err instanceof Error ? err.message : String(err)
        message = aborted ? `Cancelled the upload of ${item.key}` : `The upload of ${item.key} failed: ${item.error}`
      },
    ).finally(() => {
      files.delete(item.id)
      changed()
      pump()
    })
    changed()
  }
  return {
    get items() {
      return items
    },
    get message() {
      return message
    },
    add(prefix, list) {
      for (const file of list) {
        const id = nextId++
        files.set(id, file)
        const item: UploadItem = {
          id,
          key: `${prefix}${file.name}`,
          size: file.size,
          sent: 0,
          state: 'queued',
          cancel: () => {
            if (item.state !== 'queued') return
            item.state = 'cancelled'
            item.error = 'nothing was stored'
            files.delete(id)
            changed()
          },
        }
        items = [...items, item]
      }
      changed()
      pump()
    },
    clear() {
      items = items.filter((i) => i.state === 'queued' || i.state === 'sending')
      changed()
    },
    subscribe(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    onStored(listener) {
      stored.add(listener)
      return () => stored.delete(listener)
    },
  }
}

const STATE_TEXT: Record<UploadItem['state'], string> = { queued: 'Waiting', sending: 'Uploading', stored: 'Stored', failed: 'Failed', cancelled: 'Cancelled' }

function Item({ item }: { item: UploadItem }) {
  const percent = item.size === 0 ? 100 : Math.floor((item.sent / item.size) * 100)
  const r = item.result
  return (
    <li class={`upload upload-${item.state}`}>
      <div class="upload-key">
        {item.state === 'stored' ? <a href={href({ page: 'object', key: item.key })}>{item.key}</a> : <span>{item.key}</span>}
      </div>
      <progress max={Math.max(item.size, 1)} value={item.size === 0 ? 1 : item.sent} aria-label={`Upload of ${item.key}`} />
      <div class="upload-state">
        <span>
          {STATE_TEXT[item.state]}
          {item.state === 'sending' || item.state === 'queued' ? `: ${percent}% of ${formatBytes(item.size)}` : ''}
          {r !== undefined ? `: ${formatBytes(r.size)}, version ${r.version}, on ${plural(r.replicas.length, 'peer')}, SHA-256 ${r.sha256}` : ''}
          {item.error !== undefined ? `: ${item.error}` : ''}
        </span>
        {(item.state === 'sending' || item.state === 'queued') && (
          <button type="button" onClick={() => item.cancel()} aria-label={`Cancel upload of ${item.key}`}>
            Cancel
          </button>
        )}
      </div>
    </li>
  )
}

export function UploadPage({ prefix, uploads }: { prefix: string; uploads: Uploads }) {
  const [folder, setFolder] = useState(prefix)
  // A folder's keys go under it: "photos" means "photos/".
  const target = folder === '' || folder.endsWith('/') ? folder : `${folder}/`
  const [over, setOver] = useState(false)
  const [, redraw] = useReducer((n: number) => n + 1, 0)
  useEffect(() => uploads.subscribe(() => redraw(undefined)), [uploads])
  const items = uploads.items
  const active = items.filter((i) => i.state === 'queued' || i.state === 'sending').length
  return (
    <>
      <PageTitle>Upload</PageTitle>
      <p>Each file is stored under the folder below followed by its name, and replicated to the peers. It is read from disk as it is sent: a file of any size is fine.</p>
      <p>
        <label for="folder">Folder (key prefix)</label>
        <input id="folder" value={folder} onInput={(e) => setFolder(e.currentTarget.value)} placeholder="for example photos/2024/" spellcheck={false} aria-describedby="folder-help" />{' '}
        <span id="folder-help" class="help">
          Files are stored as “{target}<em>file name</em>”.
        </span>
      </p>
      <div
        class={`drop${over ? ' over' : ''}`}
        onDragOver={(e) => {
          e.preventDefault()
          setOver(true)
        }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault()
          setOver(false)
          if (e.dataTransfer !== null) uploads.add(target, e.dataTransfer.files)
        }}
      >
        <p>Drop files here, or choose them:</p>
        <label for="files" class="button">
          Upload
        </label>
        <input
          id="files"
          type="file"
          multiple
          class="visually-hidden"
          onKeyDown={(e) => {
            // Enter opens the chooser too, as on the button it looks like (Space does by itself).
            if (e.key === 'Enter') {
              e.preventDefault()
              e.currentTarget.click()
            }
          }}
          onChange={(e) => {
            const input = e.currentTarget
            if (input.files !== null) uploads.add(target, input.files)
            input.value = ''
          }}
        />
      </div>
      <p class="visually-hidden" aria-live="polite">
        {uploads.message}
      </p>
      {items.length > 0 && (
        <section aria-labelledby="uploads">
          <h2 id="uploads">Uploads{active > 0 ? ` (${active} under way)` : ''}</h2>
          <ul class="uploads" aria-labelledby="uploads">
            {items.map((item) => (
              <Item key={item.id} item={item} />
            ))}
          </ul>
          {active < items.length && (
            <button type="button" onClick={() => uploads.clear()}>
              Clear finished
            </button>
          )}
        </section>
      )}
    </>
  )
}
