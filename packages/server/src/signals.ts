// Combining abort signals, without the two faults of Node 20's `AbortSignal.any()`:
//
// - It holds its sources weakly, and the timer of `AbortSignal.timeout()` holds its signal weakly
//   too: a timeout that only the combination refers to is collected, and after that the
//   combination never times out (nodejs/node#57736). A read from a peer that trickles its answer
//   would never end.
// - A long-lived source (the server's shutdown signal) keeps a record of every combination ever
//   made from it, about 100 bytes each, until it aborts itself (nodejs/node#55328): a node leaked
//   memory with every request.
//
// Here a combination holds its sources (and its timer) for as long as it lives itself. Each source
// keeps one listener and a set of weak references to the combinations that follow it; a
// combination leaves those sets when it aborts, or when it is garbage collected.

/** The combinations that follow one source: weak references, so that following keeps nothing alive. */
type Followers = Set<WeakRef<AbortController>>

/** What a combination leaves behind when it ends. */
interface Links {
  readonly followed: readonly Followers[]
  readonly self: WeakRef<AbortController>
  timer: NodeJS.Timeout | undefined
}

const followersBySource = new WeakMap<AbortSignal, Followers>()
/** A combination's signal keeps its controller and its sources alive. */
const held = new WeakMap<AbortSignal, { controller: AbortController; sources: readonly AbortSignal[] }>()
const collected = new FinalizationRegistry<Links>(unlink)

/**
 * A signal that aborts when the first of `signals` aborts, with its reason (`undefined` entries are
 * skipped; a single signal is returned as it is). Unlike `AbortSignal.any()`, it keeps its sources
 * alive, so a source that nothing else refers to, like `AbortSignal.timeout(ms)` written inline, still
 * ends it after a garbage collection; and a long-lived source keeps nothing of it once it is gone.
 * Hold the returned signal for as long as it matters: its listeners go with it.
 */
export function anySignal(...signals: (AbortSignal | undefined)[]): AbortSignal {
  const sources = present(signals)
  if (sources.length === 1) return sources[0]!
  return combine(sources, undefined)
}

/**
 * A signal that aborts after `ms` milliseconds (with a `TimeoutError`) or when any of `signals` aborts
 * (with its reason), whichever comes first; see {@link anySignal}. Its timer keeps no process alive, and
 * goes when the signal aborts or is garbage collected.
 */
export function timeoutSignal(ms: number, ...signals: (AbortSignal | undefined)[]): AbortSignal {
  return combine(present(signals), ms)
}

/** The signals given, without the `undefined` entries. */
function present(signals: readonly (AbortSignal | undefined)[]): AbortSignal[] {
  return signals.filter((s): s is AbortSignal => s !== undefined)
}

function combine(sources: readonly AbortSignal[], ms: number | undefined): AbortSignal {
  const controller = new AbortController()
  const signal = controller.signal
  const aborted = sources.find((s) => s.aborted)
  if (aborted !== undefined) {
    controller.abort(aborted.reason)
    return signal
  }
  held.set(signal, { controller, sources })
  const links = link(controller, sources, ms)
  collected.register(signal, links, links)
  signal.addEventListener(
    'abort',
    () => {
      collected.unregister(links)
      unlink(links)
    },
    { once: true },
  )
  return signal
}

/** Makes `controller` follow `sources` and, given `ms`, time out; refers to it only weakly. */
function link(controller: AbortController, sources: readonly AbortSignal[], ms: number | undefined): Links {
  const self = new WeakRef(controller)
  const links: Links = { followed: sources.map(followersOf), self, timer: undefined }
  for (const followers of links.followed) followers.add(self)
  if (ms !== undefined) {
    links.timer = setTimeout(() => self.deref()?.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), ms)
    links.timer.unref()
  }
  return links
}

/** The followers of `source`, and the one listener that aborts them with it. */
function followersOf(source: AbortSignal): Followers {
  const known = followersBySource.get(source)
  if (known !== undefined) return known
  const followers: Followers = new Set()
  followersBySource.set(source, followers)
  source.addEventListener(
    'abort',
    () => {
      for (const follower of [...followers]) follower.deref()?.abort(source.reason)
      followers.clear()
    },
    { once: true },
  )
  return followers
}

function unlink(links: Links): void {
  clearTimeout(links.timer)
  for (const followers of links.followed) followers.delete(links.self)
}
