// The status page: this node, its peers (connected, or why not and what to do), how well its objects
// are replicated (and repair progress, once the node reports placement), and disk use.
import { useEffect, useState } from 'preact/hooks'
import type { LaggingPage, NodeStatus, PeerStatus, ReplicationStatus } from '../../src/status.js'
import { peerAdvice } from '../../src/advice.js'
import { formatBytes, formatDuration, plural, shortId } from '../../src/format.js'
import { request } from './api.js'
import { ErrorNote, PageTitle, Time, href } from './ui.js'

const LAGGING_SHOWN = 50

/** The objects some peer lacks, and for each peer why: fetched again when the counts or the peers change. */
function Lagging({ status }: { status: NodeStatus }) {
  const [page, setPage] = useState<LaggingPage>()
  const [error, setError] = useState<unknown>()
  const o = status.objects
  const peersKey = status.peers.map((p) => `${p.nodeId ?? p.address}:${p.connected}:${p.behind === undefined}`).join()
  useEffect(() => {
    const controller = new AbortController()
    request<LaggingPage>('GET', `/v1/lagging?limit=${LAGGING_SHOWN}`, undefined, controller.signal).then(setPage, (err: unknown) => controller.signal.aborted || setError(err))
    return () => controller.abort()
  }, [o.objects, o.lagging, o.unreplicated, peersKey])
  const name = (id: string): string => {
    const peer = status.peers.find((p) => p.nodeId === id)
    const why = peer === undefined ? '' : peer.connected ? (peer.behind === undefined ? ', connected: on its way' : ', behind') : `, not connected${peer.error?.code === undefined ? '' : ` (${peer.error.code})`}`
    return `${peer?.address ?? shortId(id)}${why}`
  }
  if (page === undefined) return <ErrorNote error={error} />
  if (page.objects.length === 0) return null
  return (
    <div class="scroll">
      <table>
        <caption>
          Not on every peer{page.next === undefined ? '' : ` (the first ${LAGGING_SHOWN})`}
        </caption>
        <thead>
          <tr>
            <th scope="col">Key</th>
            <th scope="col">Size</th>
            <th scope="col">Missing on</th>
          </tr>
        </thead>
        <tbody>
          {page.objects.map((l) => (
            <tr key={l.key}>
              <td>
                <a href={href({ page: 'object', key: l.key })}>{l.key}</a>
              </td>
              <td>{formatBytes(l.size)}</td>
              <td>{l.missing.map(name).join('; ')}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

function Peers({ peers }: { peers: PeerStatus[] }) {
  const connected = peers.filter((p) => p.connected).length
  return (
    <section aria-labelledby="peers">
      <h2 id="peers">Peers</h2>
      <p>
        {plural(peers.length, 'peer')} known, {connected} connected.
      </p>
      {peers.length > 0 && (
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">Node</th>
                <th scope="col">Address</th>
                <th scope="col">State</th>
                <th scope="col">Why, and what to do</th>
              </tr>
            </thead>
            <tbody>
              {peers.map((p) => (
                <tr key={p.nodeId ?? p.address}>
                  <td>
                    <code title={p.nodeId}>{p.nodeId === undefined ? 'not met yet' : shortId(p.nodeId)}</code>
                  </td>
                  <td>{p.address ?? 'dials this node'}</td>
                  <td class={p.connected ? (p.behind === undefined ? 'ok' : 'warn') : 'bad'}>
                    {p.connected ? (p.behind === undefined ? 'Connected' : 'Connected, behind') : `Not connected${p.error?.code === undefined ? '' : ` (${p.error.code})`}`}
                  </td>
                  <td>{peerAdvice(p) ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}

/** A bar for a share of a whole; the numbers are in the text beside it. */
const Bar = ({ part, whole, tone }: { part: number; whole: number; tone: string }) => (
  <span class={`bar ${tone}`} aria-hidden="true">
    <span style={{ width: `${whole === 0 ? 0 : Math.round((part / whole) * 100)}%` }} />
  </span>
)

function Placement({ replication, total }: { replication: ReplicationStatus; total: number }) {
  const rows = Object.entries(replication.objectsByCopies)
    .map(([copies, count]) => [Number(copies), count] as const)
    .sort((a, b) => a[0] - b[0])
  const below = rows.filter(([copies]) => copies < replication.target).reduce((n, [, count]) => n + count, 0)
  const { repair } = replication
  return (
    <>
      <p>
        Each object should have {replication.target} {replication.target === 1 ? 'copy' : 'copies'}.{' '}
        {below === 0 ? 'Every object has them.' : <strong>
            {plural(below, 'object')} {below === 1 ? 'has' : 'have'} fewer.
          </strong>}
      </p>
      <table>
        <caption>Objects by live copies</caption>
        <thead>
          <tr>
            <th scope="col">Live copies</th>
            <th scope="col">Objects</th>
            <th scope="col">Share</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(([copies, count]) => (
            <tr key={copies} class={copies < replication.target ? 'bad' : undefined}>
              <th scope="row">
                {copies}
                {copies < replication.target ? ' (below target)' : ''}
              </th>
              <td>{count}</td>
              <td>
                <Bar part={count} whole={total} tone={copies < replication.target ? 'bad' : 'ok'} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {repair.settled ? (
        <p>Repair: settled, nothing to move.</p>
      ) : (
        <p>
          <label for="repair">Repair:</label> <progress id="repair" /> {plural(repair.objectsLeft, 'object')} ({formatBytes(repair.bytesLeft)}) left
          {repair.etaSeconds === undefined ? '' : `, about ${formatDuration(repair.etaSeconds)} to go`}.
        </p>
      )}
    </>
  )
}

function Replication({ status }: { status: NodeStatus }) {
  const o = status.objects
  const late = status.peers.filter((p) => !p.connected || p.behind !== undefined)
  return (
    <section aria-labelledby="replication">
      <h2 id="replication">Replication</h2>
      <p>
        {plural(o.objects, 'object')} stored through this node ({formatBytes(o.bytes)}).
      </p>
      {status.replication !== undefined ? (
        <Placement replication={status.replication} total={o.objects} />
      ) : status.peers.length === 0 ? (
        <p class="warn">No peers are known, so no object has a copy elsewhere: a lost disk loses them.</p>
      ) : (
        <table>
          <caption>Objects by where their copies are</caption>
          <tbody>
            <tr>
              <th scope="row">On every known peer</th>
              <td>{o.replicated}</td>
              <td>
                <Bar part={o.replicated} whole={o.objects} tone="ok" />
              </td>
            </tr>
            <tr class={o.lagging > 0 ? 'warn' : undefined}>
              <th scope="row">Not yet on every peer</th>
              <td>
                {o.lagging} ({formatBytes(o.lagBytes)})
              </td>
              <td>
                <Bar part={o.lagging} whole={o.objects} tone="warn" />
              </td>
            </tr>
            <tr class={o.unreplicated > 0 ? 'bad' : undefined}>
              <th scope="row">On no peer</th>
              <td>{o.unreplicated}</td>
              <td>
                <Bar part={o.unreplicated} whole={o.objects} tone="bad" />
              </td>
            </tr>
          </tbody>
        </table>
      )}
      {(o.lagging > 0 || o.unreplicated > 0 || late.length > 0) && (
        <>
          <h3>Why some copies are missing</h3>
          {late.length === 0 ? (
            <p>Every peer is connected: the missing copies are on their way.</p>
          ) : (
            <ul>
              {late.map((p) => (
                <li key={p.nodeId ?? p.address}>
                  {p.address ?? shortId(p.nodeId ?? '')}: {peerAdvice(p)}. It gets its copies when it catches up.
                </li>
              ))}
            </ul>
          )}
          {o.lagging > 0 && <Lagging status={status} />}
        </>
      )}
    </section>
  )
}

function Disk({ status }: { status: NodeStatus }) {
  const d = status.disk
  const used = d.blobs + d.replicas + d.index
  return (
    <section aria-labelledby="disk">
      <h2 id="disk">Disk use on this node</h2>
      <table>
        <tbody>
          <tr>
            <th scope="row">Own objects (blobs)</th>
            <td>{formatBytes(d.blobs)}</td>
          </tr>
          <tr>
            <th scope="row">Replicas held for peers</th>
            <td>{formatBytes(d.replicas)}</td>
          </tr>
          <tr>
            <th scope="row">Index</th>
            <td>{formatBytes(d.index)}</td>
          </tr>
          <tr>
            <th scope="row">Free</th>
            <td>
              {formatBytes(d.free)} <Bar part={used} whole={used + d.free} tone="ok" />
            </td>
          </tr>
        </tbody>
      </table>
    </section>
  )
}

export function StatusPage({ status }: { status: NodeStatus | undefined }) {
  if (status === undefined)
    return (
      <>
        <PageTitle>Status</PageTitle>
        <p role="status">Waiting for the node's status…</p>
      </>
    )
  const scrub = status.lastScrub
  return (
    <>
      <PageTitle>Status</PageTitle>
      <section aria-labelledby="node">
        <h2 id="node">This node</h2>
        <dl>
          <dt>Node id</dt>
          <dd>
            <code class="wrap">{status.nodeId}</code>
          </dd>
          <dt>Listens for peers</dt>
          <dd>{status.address}</dd>
          <dt>Data directory</dt>
          <dd>
            <code class="wrap">{status.root}</code>
          </dd>
          <dt>Running</dt>
          <dd>
            {formatDuration(status.uptime)}, dcas {status.version}, pid {status.pid}, memory {formatBytes(status.memory.rss)}
          </dd>
          <dt>Health</dt>
          <dd>
            {plural(status.healed, 'chunk')} healed from peers since the start;{' '}
            {scrub === undefined ? (
              'no scrub since the start'
            ) : (
              <>
                last scrub <Time at={scrub.at} />: {plural(scrub.objects, 'object')}, {scrub.healed} healed, {scrub.failed.length} failed
              </>
            )}
          </dd>
        </dl>
      </section>
      <Peers peers={status.peers} />
      <Replication status={status} />
      <Disk status={status} />
    </>
  )
}
