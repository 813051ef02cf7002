// Prometheus metrics of a node (prom-client, in a registry of its own so several nodes can
// live in one process): bytes, operations and errors by kind, replication lag, placement and repair, peers, heals, scrubs.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { HealedEvent, PlacementStatus, ScrubResult, Server } from '@dcas/server'
import { replicaHealth } from './health.js'

/** The operations the HTTP API counts. */
export type Operation = 'put' | 'get' | 'head' | 'delete' | 'list' | 'status' | 'scrub' | 'drain'

/** A node's metrics. */
export interface NodeMetrics {
  /** The registry `GET /metrics` serves. */
  readonly registry: Registry
  /** Counts one operation. */
  operation(op: Operation): void
  /** Counts one failed operation, by the error's code. */
  error(op: Operation, code: string): void
  /** Counts bytes stored by puts. */
  stored(bytes: number): void
  /** Counts bytes sent by gets. */
  read(bytes: number): void
  /** Records a finished scrub. */
  scrubbed(result: ScrubResult): void
  /** Chunks healed from peers since the start. */
  readonly healed: number
  /** Stops listening to the server's events. */
  close(): void
}

/** Creates the metrics of `server`: counters fed by the API and the server's events, gauges read at scrape time. */
export function createMetrics(server: Server, options: { defaultMetrics?: boolean } = {}): NodeMetrics {
  const registry = new Registry()
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const bytesStored = new Counter({ name: 'dcas_bytes_stored_total', help: 'Bytes of objects stored through the API.', registers })
  const bytesRead = new Counter({ name: 'dcas_bytes_read_total', help: 'Bytes of objects sent by the API.', registers })
  const operations = new Counter({ name: 'dcas_operations_total', help: 'API operations, by kind.', labelNames: ['operation'] as const, registers })
  const errors = new Counter({ name: 'dcas_errors_total', help: 'Failed API operations, by kind and error code.', labelNames: ['operation', 'code'] as const, registers })
  const healed = new Counter({ name: 'dcas_healed_chunks_total', help: 'Chunks lost or damaged locally and healed from a peer.', registers })
  const scrubs = new Counter({ name: 'dcas_scrubs_total', help: 'Scrubs run.', registers })
  const scrubObjects = new Counter({ name: 'dcas_scrub_objects_total', help: 'Objects verified by scrubs.', registers })
  const scrubHealed = new Counter({ name: 'dcas_scrub_healed_chunks_total', help: 'Chunks healed by scrubs.', registers })
  const scrubFailed = new Counter({ name: 'dcas_scrub_failed_objects_total', help: 'Objects a scrub could not verify or heal.', registers })
  new Gauge({
    name: 'dcas_peers_connected',
    help: 'Peers connected now.',
    registers,
    collect() {
      this.set(server.peers().filter((p) => p.connected).length)
    },
  })
  new Gauge({
    name: 'dcas_peers_known',
    help: 'Peers this node knows, connected or not.',
    registers,
    collect() {
      this.set(server.peers().length)
    },
  })
  // One placement status and one walk of the index per scrape feed every object gauge.
  let placement: Promise<PlacementStatus> | undefined
  const placementOnce = (): Promise<PlacementStatus> => (placement ??= server.placementStatus().finally(() => queueMicrotask(() => (placement = undefined))))
  let health: ReturnType<typeof replicaHealth> | undefined
  const healthOnce = (): ReturnType<typeof replicaHealth> =>
    (health ??= placementOnce()
      .then((p) => replicaHealth(server, p.target))
      .finally(() => queueMicrotask(() => (health = undefined))))
  const objectGauge = (name: string, help: string, pick: (h: Awaited<ReturnType<typeof replicaHealth>>) => number): void => {
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        this.set(pick(await healthOnce()))
      },
    })
  }
  objectGauge('dcas_objects', 'Objects stored on this node.', (h) => h.objects)
  objectGauge('dcas_object_bytes', 'Bytes of the objects stored on this node.', (h) => h.bytes)
  objectGauge('dcas_replication_lag_objects', 'Objects some known peer has not acknowledged yet.', (h) => h.lagging)
  objectGauge('dcas_replication_lag_bytes', 'Bytes of the objects some known peer has not acknowledged yet.', (h) => h.lagBytes)
  objectGauge('dcas_unreplicated_objects', 'Objects no peer holds.', (h) => h.unreplicated)
  const placementGauge = (name: string, help: string, pick: (p: PlacementStatus) => number | undefined): void => {
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        const value = pick(await placementOnce())
        this.reset()
        if (value !== undefined) this.set(value)
      },
    })
  }
  placementGauge('dcas_placement_target_copies', 'Peer copies each object should have.', (p) => p.target)
  placementGauge('dcas_repair_objects_left', 'Objects with a copy still to make or to release (repair and rebalancing).', (p) => p.repair.objectsLeft)
  placementGauge('dcas_repair_bytes_left', 'Bytes still to copy to placed holders.', (p) => p.repair.bytesLeft)
  placementGauge('dcas_repair_eta_seconds', 'Seconds left at the recent repair rate (absent when there is no rate to judge by).', (p) => p.repair.etaSeconds)
  placementGauge('dcas_placement_settled', '1 when every object is on its placed holders and nothing is left to copy or release, else 0.', (p) => (p.repair.settled ? 1 : 0))
  new Gauge({
    name: 'dcas_objects_by_copies',
    help: 'Objects of this node by their number of live peer copies.',
    labelNames: ['copies'] as const,
    registers,
    async collect() {
      const { objectsByCopies, target } = await placementOnce()
      this.reset()
      // Every count up to the target is there, zero or not, so that a query for "below target" always finds a series.
      for (let copies = 0; copies <= target; copies++) this.set({ copies: String(copies) }, 0)
      for (const [copies, n] of Object.entries(objectsByCopies)) this.set({ copies }, n)
    },
  })
  new Gauge({
    name: 'dcas_nodes',
    help: 'Other nodes this node knows, by state (active, leaving, lost).',
    labelNames: ['state'] as const,
    registers,
    collect() {
      this.reset()
      for (const state of ['active', 'leaving', 'lost'] as const) this.set({ state }, server.peers().filter((p) => (p.state ?? 'active') === state).length)
    },
  })

  let healedCount = 0
  const onHealed = (_: HealedEvent): void => {
    healedCount++
    healed.inc()
  }
  server.on('healed', onHealed)
  return {
    registry,
    operation: (op) => operations.inc({ operation: op }),
    error: (op, code) => errors.inc({ operation: op, code }),
    stored: (n) => bytesStored.inc(n),
    read: (n) => bytesRead.inc(n),
    scrubbed: (r) => {
      scrubs.inc()
      scrubObjects.inc(r.objects)
      scrubHealed.inc(r.healed)
      scrubFailed.inc(r.failed.length)
    },
    get healed() {
      return healedCount
    },
    close: () => {
      server.off('healed', onHealed)
    },
  }
}
