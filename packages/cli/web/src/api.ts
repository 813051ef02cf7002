// The console's calls to its node's HTTP API: the session kept in this tab, JSON requests, uploads
// (XHR, for upload progress; a File body streams from disk) and downloads (a single-use ticket).
import type { DeleteResult, StoreResult } from '@dcas/server'

/** An object as listings return it. */
export interface Entry {
  key: string
  size: number
  sha256: string
  version: number
  updatedAt: number
}

/** A page of a folder listing or a search. */
export interface Page {
  objects: Entry[]
  prefixes?: string[]
  scanned?: number
  next?: string
}

/** One object's metadata. */
export interface ObjectStat extends Entry {
  chunks: number
  /** Peers that acknowledged this version. */
  replicas: string[]
}

/** An answer that is not a success, with the node's error code. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

const STORE = 'dcas.session'

/** The session of this tab: kept in sessionStorage (this origin and tab only), never in a URL or a cookie. */
export const session = {
  get: (): string | null => sessionStorage.getItem(STORE),
  set: (value: string): void => sessionStorage.setItem(STORE, value),
  clear: (): void => sessionStorage.removeItem(STORE),
}

/** Fired on `window` when the node refuses the session (it restarted, or the session ended). */
export const LOGGED_OUT = 'dcas:logged-out'

/** Throws what an error answer says; a refused session also logs this tab out. */
export async function failureOf(res: Response): Promise<ApiFailure> {
  let code = `HTTP_${res.status}`
  let message = `the node answered ${res.status} ${res.statusText}`
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } }
    code = body.error?.code ?? code
    message = body.error?.message ?? message
  } catch {
    // not a JSON answer
  }
  if (res.status === 401 && session.get() !== null) {
    session.clear()
    window.dispatchEvent(new CustomEvent(LOGGED_OUT, { detail: 'The node no longer knows this session (it restarted, or the session ended): log in again.' }))
  }
  return new ApiFailure(res.status, code, message)
}

/** Authorization for this tab's session. */
export const authHeaders = (): Record<string, string> => {
  const s = session.get()
  return s === null ? {} : { authorization: `Bearer ${s}` }
}

/** A JSON request with the session; resolves to the JSON answer (or undefined for 204). */
export async function request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: { ...authHeaders(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...(signal === undefined ? {} : { signal }),
  })
  if (!res.ok) throw await failureOf(res)
  return (res.status === 204 ? undefined : await res.json()) as T
}

/** The path of an object: every character that could mean something else in a URL escaped. */
export const objectPath = (key: string): string => `/v1/objects/${encodeURIComponent(key)}`

/** Logs in with the API token or a one-time link's code; keeps the session in this tab. */
export async function login(credential: { token: string } | { link: string }): Promise<void> {
  const { session: value } = await request<{ session: string }>('POST', '/v1/session', credential)
  session.set(value)
}

/** Ends the session on the node and in this tab. */
export async function logout(): Promise<void> {
  try {
    await request('DELETE', '/v1/session')
  } finally {
    session.clear()
  }
}

/** One page of the folder `prefix` (its objects and sub-folders). */
export const listFolder = (prefix: string, after: string | undefined, signal: AbortSignal): Promise<Page> =>
  request('GET', `/v1/objects?${new URLSearchParams({ prefix, delimiter: '/', limit: '1000', ...(after === undefined ? {} : { after }) }).toString()}`, undefined, signal)

/** One page of the keys under `prefix` whose name contains `text`. */
export const searchKeys = (prefix: string, text: string, after: string | undefined, signal: AbortSignal): Promise<Page> =>
  request('GET', `/v1/objects?${new URLSearchParams({ prefix, contains: text, limit: '1000', ...(after === undefined ? {} : { after }) }).toString()}`, undefined, signal)

/** An object's metadata (from a HEAD's headers). */
export async function statObject(key: string, signal?: AbortSignal): Promise<ObjectStat> {
  const res = await fetch(objectPath(key), { method: 'HEAD', headers: authHeaders(), ...(signal === undefined ? {} : { signal }) })
  if (res.status === 404) throw new ApiFailure(404, 'ERR_NOT_FOUND', `no object is stored under "${key}" (it may have been deleted)`)
  if (!res.ok) throw await failureOf(res)
  const h = (name: string): string => res.headers.get(name) ?? ''
  const replicas = h('x-dcas-replicas')
  return {
    key,
    size: Number(h('content-length')),
    sha256: h('x-dcas-sha256'),
    version: Number(h('x-dcas-version')),
    chunks: Number(h('x-dcas-chunks')),
    updatedAt: Date.parse(h('last-modified')),
    replicas: replicas === '' ? [] : replicas.split(','),
  }
}

/** Deletes an object on the node and its peers. */
export const deleteObject = (key: string): Promise<DeleteResult> => request('DELETE', objectPath(key))

/**
 * Downloads an object as a file the browser saves, streamed: a ticket for one GET, then a link to it
 * (a link cannot carry the session, and the session must not go into a URL).
 */
export async function download(key: string): Promise<{ sha256: string; size: number }> {
  const ticket = await request<{ url: string; sha256: string; size: number }>('POST', '/v1/downloads', { key })
  const link = document.createElement('a')
  link.href = ticket.url
  link.download = ''
  link.hidden = true
  document.body.append(link)
  link.click()
  link.remove()
  return ticket
}

/** An upload under way. */
export interface Upload {
  /** Resolves with what the node stored; rejects with an {@link ApiFailure} (code `ERR_ABORTED` when cancelled). */
  done: Promise<StoreResult>
  /** Stops sending: the node stores nothing of it. */
  cancel(): void
}

/** Uploads a file under `key`, streamed from disk, reporting the bytes sent. */
export function upload(key: string, file: Blob, onProgress: (sent: number) => void): Upload {
  const xhr = new XMLHttpRequest()
  const done = new Promise<StoreResult>((resolve, reject) => {
    xhr.upload.onprogress = (e) => onProgress(e.loaded)
    xhr.onload = () => {
      if (xhr.status === 201) return resolve(JSON.parse(xhr.responseText) as StoreResult)
      void failureOf(new Response(xhr.responseText, { status: xhr.status, statusText: xhr.statusText })).then(reject)
    }
    xhr.onerror = () => reject(new ApiFailure(0, 'ERR_NETWORK', 'the connection to the node failed'))
    xhr.onabort = () => reject(new ApiFailure(0, 'ERR_ABORTED', 'nothing was stored'))
  })
  xhr.open('PUT', objectPath(key))
  for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value)
  xhr.setRequestHeader('content-type', 'application/octet-stream')
  xhr.send(file)
  return { done, cancel: () => xhr.abort() }
}
