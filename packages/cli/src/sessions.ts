// The web console's credentials besides the API token: login sessions, one-time login links and
// single-use download tickets. Kept in memory (a restart ends them all, as it changes the token), each
// kind bounded in number and lifetime, and stored by SHA-256 so a lookup leaks nothing of the secret.
import { createHash, randomBytes } from 'node:crypto'

/** Lifetimes and bounds of {@link ConsoleCredentials}. */
export interface CredentialLimits {
  /** A session unused this long ends (default 12 h). */
  sessionIdleMs: number
  /** Sessions at once; the least recently used goes first (default 64). */
  maxSessions: number
  /** A login link is good for this long (default 5 min), once. */
  linkMs: number
  /** Login links outstanding at once (default 16). */
  maxLinks: number
  /** A download ticket is good for this long (default 60 s), once. */
  ticketMs: number
  /** Download tickets outstanding at once (default 256). */
  maxTickets: number
}

/** The limits a node uses unless told otherwise. */
export const DEFAULT_CREDENTIAL_LIMITS: Readonly<CredentialLimits> = {
  sessionIdleMs: 12 * 3600_000,
  maxSessions: 64,
  linkMs: 5 * 60_000,
  maxLinks: 16,
  ticketMs: 60_000,
  maxTickets: 256,
}

/** Prefix of session tokens, so a log or a user can tell one from the API token. */
export const SESSION_PREFIX = 'dcas-session.'

const secret = (): string => randomBytes(32).toString('base64url')
const digest = (s: string): string => createHash('sha256').update(s).digest('base64url')

/** A map from a secret's digest to its record, bounded: inserting past `max` drops the oldest entry. */
class Bounded<V extends { expiresAt: number }> {
  readonly #entries = new Map<string, V>()
  constructor(readonly max: number) {}

  add(id: string, value: V, now: number): void {
    for (const [k, v] of this.#entries) if (v.expiresAt <= now) this.#entries.delete(k)
    while (this.#entries.size >= this.max) this.#entries.delete(this.#entries.keys().next().value!)
    this.#entries.set(digest(id), value)
  }

  /** The live record of `id`, moved to the newest end (least recently used goes first). */
  touch(id: string, now: number): V | undefined {
    const k = digest(id)
    const v = this.#entries.get(k)
    if (v === undefined) return undefined
    this.#entries.delete(k)
    if (v.expiresAt <= now) return undefined
    this.#entries.set(k, v)
    return v
  }

  /** Removes and returns the live record of `id`. */
  take(id: string, now: number): V | undefined {
    const k = digest(id)
    const v = this.#entries.get(k)
    this.#entries.delete(k)
    return v !== undefined && v.expiresAt > now ? v : undefined
  }

  clear(): void {
    this.#entries.clear()
  }
}

/** The console's sessions, login links and download tickets of one run of the node. */
export class ConsoleCredentials {
  readonly limits: CredentialLimits
  readonly #now: () => number
  readonly #sessions: Bounded<{ expiresAt: number }>
  readonly #links: Bounded<{ expiresAt: number }>
  readonly #tickets: Bounded<{ expiresAt: number; key: string }>

  constructor(limits: Partial<CredentialLimits> = {}, now: () => number = Date.now) {
    this.limits = { ...DEFAULT_CREDENTIAL_LIMITS, ...limits }
    this.#now = now
    this.#sessions = new Bounded(this.limits.maxSessions)
    this.#links = new Bounded(this.limits.maxLinks)
    this.#tickets = new Bounded(this.limits.maxTickets)
  }

  /** Starts a session; the token goes to the browser, which sends it as its bearer token. */
  startSession(): string {
    const token = `${SESSION_PREFIX}${secret()}`
    this.#sessions.add(token, { expiresAt: this.#now() + this.limits.sessionIdleMs }, this.#now())
    return token
  }

  /** Whether `token` is a live session; using it keeps it alive. */
  useSession(token: string): boolean {
    const session = this.#sessions.touch(token, this.#now())
    if (session === undefined) return false
    session.expiresAt = this.#now() + this.limits.sessionIdleMs
    return true
  }

  /** Ends a session (logout). */
  endSession(token: string): void {
    this.#sessions.take(token, this.#now())
  }

  /** A code for a one-time login link (`dcas open`). */
  createLink(): { code: string; expiresAt: number } {
    const code = secret()
    const expiresAt = this.#now() + this.limits.linkMs
    this.#links.add(code, { expiresAt }, this.#now())
    return { code, expiresAt }
  }

  /** Spends a login link's code: true once, while it is fresh. */
  redeemLink(code: string): boolean {
    return this.#links.take(code, this.#now()) !== undefined
  }

  /** A ticket to download `key` once, by a plain GET (a browser download cannot send a bearer token). */
  createTicket(key: string): { ticket: string; expiresAt: number } {
    const ticket = secret()
    const expiresAt = this.#now() + this.limits.ticketMs
    this.#tickets.add(ticket, { expiresAt, key }, this.#now())
    return { ticket, expiresAt }
  }

  /** Spends a ticket: the key it was made for, once, while it is fresh. */
  redeemTicket(ticket: string): string | undefined {
    return this.#tickets.take(ticket, this.#now())?.key
  }

  /** Forgets everything (the node is closing). */
  clear(): void {
    this.#sessions.clear()
    this.#links.clear()
    this.#tickets.clear()
  }
}
