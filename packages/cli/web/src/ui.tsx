// Small pieces every page uses: links between pages, headings that take the focus, dates, errors.
import { useEffect, useRef } from 'preact/hooks'
import type { ComponentChildren } from 'preact'
import { ApiFailure } from './api.js'

/** A page of the console, as its URL fragment says. */
export type Route = { page: 'status' } | { page: 'objects'; prefix: string } | { page: 'object'; key: string } | { page: 'upload'; prefix: string }

/** The URL fragment of a page. */
export function href(route: Route): string {
  switch (route.page) {
    case 'status':
      return '#/status'
    case 'objects':
      return `#/objects/${encodeURIComponent(route.prefix)}`
    case 'object':
      return `#/object/${encodeURIComponent(route.key)}`
    case 'upload':
      return `#/upload/${encodeURIComponent(route.prefix)}`
  }
}

/** The page a URL fragment names (the status page for anything else). */
export function parseRoute(hash: string): Route {
  const m = /^#\/(objects|object|upload)\/(.*)$/s.exec(hash)
  if (m === null) return { page: 'status' }
  let value: string
  try {
    value = decodeURIComponent(m[2]!)
  } catch {
    return { page: 'status' }
  }
  if (m[1] === 'object') return { page: 'object', key: value }
  return { page: m[1] as 'objects' | 'upload', prefix: value }
}

/** The page's heading; it takes the focus when the page opens, so a screen reader starts there. */
export function PageTitle({ children }: { children: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null)
  useEffect(() => ref.current?.focus(), [])
  return (
    <h1 ref={ref} tabIndex={-1}>
      {children}
    </h1>
  )
}

/** A time as the reader's locale writes it, with the exact instant for machines. */
export function Time({ at }: { at: number }) {
  const date = new Date(at)
  return <time dateTime={date.toISOString()}>{date.toLocaleString()}</time>
}

/** What went wrong, announced at once. */
export function ErrorNote({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null
  const message = error instanceof ApiFailure ? `${error.message} (${error.code})` : errorText(error)
  return (
    <p class="error" role="alert">
      {message}
    </p>
  )
}

/** Human text of an error, for inline status. */
export const errorText = (error: unknown): string => (error instanceof Error ? error.message : typeof error === 'string' ? error : 'something went wrong')
