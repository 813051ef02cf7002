import { describe, expect, it } from 'vitest'
import { ConsoleCredentials, SESSION_PREFIX } from '../src/sessions.js'

/** Credentials on a clock the test moves. */
function withClock(limits: ConstructorParameters<typeof ConsoleCredentials>[0] = {}): { credentials: ConsoleCredentials; advance: (ms: number) => void } {
  let now = 1_000_000
  return { credentials: new ConsoleCredentials(limits, () => now), advance: (ms) => (now += ms) }
}

describe('console sessions', () => {
  it('knows the sessions it started, and nothing else', () => {
    const { credentials } = withClock()
    const session = credentials.startSession()
    expect(session.startsWith(SESSION_PREFIX)).toBe(true)
    expect(credentials.useSession(session)).toBe(true)
    expect(credentials.useSession(`${session}x`)).toBe(false)
    expect(credentials.useSession('')).toBe(false)
  })

  it('ends a session on logout and after it sat unused too long, but not while it is used', () => {
    const { credentials, advance } = withClock({ sessionIdleMs: 1000 })
    const used = credentials.startSession()
    const idle = credentials.startSession()
    const loggedOut = credentials.startSession()
    credentials.endSession(loggedOut)
    expect(credentials.useSession(loggedOut)).toBe(false)
    for (let i = 0; i < 3; i++) {
      advance(600)
      expect(credentials.useSession(used)).toBe(true)
    }
    expect(credentials.useSession(idle)).toBe(false)
  })

  it('keeps at most maxSessions, dropping the least recently used', () => {
    const { credentials } = withClock({ maxSessions: 2 })
    const first = credentials.startSession()
    const second = credentials.startSession()
    expect(credentials.useSession(first)).toBe(true) // first is now the most recent
    const third = credentials.startSession()
    expect(credentials.useSession(second)).toBe(false)
    expect(credentials.useSession(first)).toBe(true)
    expect(credentials.useSession(third)).toBe(true)
  })
})

describe('one-time login links', () => {
  it('are good once, and not after they expire', () => {
    const { credentials, advance } = withClock({ linkMs: 1000 })
    const { code } = credentials.createLink()
    expect(credentials.redeemLink(code)).toBe(true)
    expect(credentials.redeemLink(code)).toBe(false)
    const late = credentials.createLink()
    advance(1000)
    expect(credentials.redeemLink(late.code)).toBe(false)
  })
})

describe('download tickets', () => {
  it('give their key once, within their lifetime', () => {
    const { credentials, advance } = withClock({ ticketMs: 1000 })
    const { ticket } = credentials.createTicket('a/b.txt')
    expect(credentials.redeemTicket(ticket)).toBe('a/b.txt')
    expect(credentials.redeemTicket(ticket)).toBeUndefined()
    const late = credentials.createTicket('c')
    advance(1001)
    expect(credentials.redeemTicket(late.ticket)).toBeUndefined()
  })

  it('are bounded in number: the oldest goes first', () => {
    const { credentials } = withClock({ maxTickets: 3 })
    const tickets = ['a', 'b', 'c', 'd'].map((key) => credentials.createTicket(key).ticket)
    expect(credentials.redeemTicket(tickets[0]!)).toBeUndefined()
    expect(tickets.slice(1).map((t) => credentials.redeemTicket(t))).toEqual(['b', 'c', 'd'])
  })

  it('are not sessions, nor login links', () => {
    const { credentials } = withClock()
    const { ticket } = credentials.createTicket('k')
    const { code } = credentials.createLink()
    expect(credentials.useSession(ticket)).toBe(false)
    expect(credentials.useSession(code)).toBe(false)
    expect(credentials.redeemLink(ticket)).toBe(false)
    expect(credentials.redeemTicket(code)).toBeUndefined()
  })
})
