// The flags of a node's place in the cluster, which `dcas init` (into config.json) and `dcas serve`
// (over it) both take.
import type { Command } from 'commander'
import { parseAddress, parseBytes, parseDuration, parseReplicas, parseWriteQuorum, parseZone, type PlacementSettings } from './config.js'
import { collect } from './command-kit.js'

/** The flags of a node's place in the cluster, as commander parsed them. */
export interface PlacementFlags {
  writeQuorum?: string
  replicas?: string
  zone?: string
  capacity?: string
  announce?: string[]
  lostAfter?: string
  repairRate?: string
}

/** Adds the placement flags to `command`; `defaults` says in their help where their defaults come from. */
export function addPlacementOptions(command: Command, defaults: string): Command {
  return command
    .option('--replicas <n|all>', `peer copies of each object besides this node's own, or all peers (${defaults}; default 2)`)
    .option('--write-quorum <n|all>', `placed holders that must acknowledge a put: a number (0: this node only) or all of them (${defaults}; default 1)`)
    .option('--zone <label>', `this node's zone (rack, room, site): copies go to distinct zones while there are enough (${defaults})`)
    .option('--capacity <bytes>', `bytes this node offers to hold for others, like 4TiB: its weight in placement (${defaults}; default: the median of the others)`)
    .option('--announce <host:port>', `an address other nodes may dial this node at (repeat for more; ${defaults}; default: the listen address)`, collect)
    .option('--lost-after <duration>', `how long a node may be unseen before its copies are made again elsewhere, like 30m (${defaults}; default 30m)`)
    .option('--repair-rate <bytes>', `bytes per second repair and rebalancing may send, like 64MiB (${defaults}; default 64MiB)`)
}

/** The settings the flags given name (those not given are left out). */
export function placementSettings(opts: PlacementFlags): PlacementSettings {
  return {
    ...(opts.writeQuorum === undefined ? {} : { writeQuorum: parseWriteQuorum(opts.writeQuorum) }),
    ...(opts.replicas === undefined ? {} : { replicas: parseReplicas(opts.replicas) }),
    ...(opts.zone === undefined ? {} : { zone: parseZone(opts.zone) }),
    ...(opts.capacity === undefined ? {} : { capacity: parseBytes(opts.capacity, '--capacity') }),
    ...(opts.announce === undefined ? {} : { announce: opts.announce.map((a) => (parseAddress(a, '--announce'), a)) }),
    ...(opts.lostAfter === undefined ? {} : { lostAfter: parseDuration(opts.lostAfter, '--lost-after') }),
    ...(opts.repairRate === undefined ? {} : { repairRate: parseBytes(opts.repairRate, '--repair-rate') }),
  }
}
