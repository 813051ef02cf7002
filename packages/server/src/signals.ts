// Combining abort signals so that a combination lives as long as what it combines.
//
// Node's `AbortSignal.any()` holds its sources weakly, and the timer of `AbortSignal.timeout()`
// holds its signal weakly too. A timeout (or any signal) that only a combination refers to is
// collected, and after that garbage collection the combination never aborts for it
// (nodejs/node#57736): a read from a peer that trickles bytes would never time out. A combination
// made here holds each of its sources for as long as it lives itself.

const sourcesOf = new WeakMap<AbortSignal, readonly AbortSignal[]>()

/**
 * A signal that aborts when the first of `signals` aborts, with its reason (`undefined` entries are
 * skipped). Unlike `AbortSignal.any()`, it keeps its sources alive, so a source that nothing else refers
 * to, like `AbortSignal.timeout(ms)` written inline, still ends it after a garbage collection.
 */
export function anySignal(...signals: (AbortSignal | undefined)[]): AbortSignal {
  const sources = signals.filter((s): s is AbortSignal => s !== undefined)
  if (sources.length === 1) return sources[0]!
  const combined = AbortSignal.any(sources)
  sourcesOf.set(combined, sources)
  return combined
}

/**
 * A signal that aborts after `ms` milliseconds (with a `TimeoutError`) or when any of `signals` aborts
 * (with its reason), whichever comes first; see {@link anySignal}. Its timer keeps no process alive.
 */
export function timeoutSignal(ms: number, ...signals: (AbortSignal | undefined)[]): AbortSignal {
  return anySignal(AbortSignal.timeout(ms), ...signals)
}
