// Listing keys as folders (a delimiter, as S3's CommonPrefixes) and searching them by a part of
// their name, on top of the server's ordered, paged `list`. Each request does bounded work.
import type { ListEntry, Server } from '@dcas/server'

/** A page of a folder listing: the objects directly in it and its sub-folders, in key order. */
export interface FolderPage {
  objects: ListEntry[]
  /** Sub-folders: each a key prefix ending with the delimiter. */
  prefixes: string[]
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string
}

/** A page of a search: matching objects, and how far the scan got. */
export interface SearchPage {
  objects: ListEntry[]
  /** Keys looked at by this request. */
  scanned: number
  /** Pass as `after` to search on; absent once every key under the prefix was looked at. */
  next?: string
}

// The largest code point: `folder + MAX` sorts after every key inside `folder` (keys are ordered by their
// UTF-8 bytes, and no UTF-8 sequence is above U+10FFFF's), except one whose next character is U+10FFFF itself.
const MAX = '\u{10FFFF}'
const SCAN_PAGE = 256

/**
 * The objects and sub-folders directly under `prefix`: keys holding `delimiter` after the prefix are
 * folded into one folder each, skipped over in the index rather than read one by one.
 */
export async function listFolder(server: Server, options: { prefix: string; delimiter: string; limit: number; after?: string }): Promise<FolderPage> {
  const { prefix, delimiter, limit } = options
  const objects: ListEntry[] = []
  const prefixes: string[] = []
  let after = options.after
  // What this page returned last (or where the previous page ended): `next` when the page fills up.
  let last = options.after
  for (;;) {
    const page = await server.list({ prefix, limit: SCAN_PAGE, ...(after === undefined ? {} : { after }) })
    let skipped = false
    for (const entry of page) {
      after = entry.key
      const cut = entry.key.indexOf(delimiter, prefix.length)
      if (cut === -1) {
        if (objects.length + prefixes.length === limit) return { objects, prefixes, next: last! }
        objects.push(entry)
        last = entry.key
        continue
      }
      const folder = entry.key.slice(0, cut + delimiter.length)
      if (folder === prefixes.at(-1) || (last !== undefined && `${folder}${MAX}` === last)) continue
      if (objects.length + prefixes.length === limit) return { objects, prefixes, next: last! }
      prefixes.push(folder)
      // Jump over the folder's keys; `after` only grows, so the walk ends.
      last = `${folder}${MAX}`
      if (!entry.key.startsWith(last)) after = last
      skipped = true
      break
    }
    if (!skipped && page.length < SCAN_PAGE) return { objects, prefixes }
  }
}

/**
 * Objects under `prefix` whose name after the prefix contains `text` (ignoring case), looking at
 * no more than `budget` keys: when the budget runs out first, `next` says where to go on.
 */
export async function searchKeys(server: Server, options: { prefix: string; text: string; limit: number; after?: string; budget?: number }): Promise<SearchPage> {
  const { prefix, limit } = options
  const budget = options.budget ?? 10_000
  const needle = options.text.toLowerCase()
  const objects: ListEntry[] = []
  let after = options.after
  let scanned = 0
  for (;;) {
    const want = Math.min(SCAN_PAGE, budget - scanned)
    const page = await server.list({ prefix, limit: want, ...(after === undefined ? {} : { after }) })
    for (const entry of page) {
      scanned++
      after = entry.key
      if (entry.key.slice(prefix.length).toLowerCase().includes(needle)) {
        objects.push(entry)
        if (objects.length === limit) return { objects, scanned, next: after }
      }
    }
    if (page.length < want) return { objects, scanned }
    if (scanned >= budget) return { objects, scanned, next: after! }
  }
}
