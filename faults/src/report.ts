// Counts and findings of a whole invocation: the figures line, and every invariant violation with
// the seed of the run that found it.
import { appendFileSync } from 'node:fs'

/** One broken invariant. */
export interface Violation {
  seed: string
  kind: string
  detail: string
}

/** What the figures line and the summary print. */
export class Report {
  runs = 0
  ops = 0
  kills = 0
  netfaults = 0
  bitflips = 0
  partitions = 0
  lost = 0
  corrupt = 0
  resurrected = 0
  /** Details beyond the figures line. */
  readonly extra = {
    stores: 0,
    reads: 0,
    deletes: 0,
    failedOps: 0,
    failedReads: 0,
    diskFull: 0,
    localLosses: 0,
    recoveries: 0,
    healed: 0,
    hostileCases: 0,
    unknownClients: 0,
    rottenLeft: 0,
  }
  readonly errorCodes = new Map<string, number>()
  readonly violations: Violation[] = []
  seed = ''
  #logFile: string | undefined
  #echo: boolean

  constructor(options: { verbose: boolean }) {
    this.#echo = options.verbose
  }

  /** Where this run's log goes (besides stdout when verbose). */
  logTo(file: string | undefined): void {
    this.#logFile = file
  }

  log(line: string): void {
    const stamped = `${new Date().toISOString().slice(11, 23)} ${line}`
    if (this.#logFile !== undefined) appendFileSync(this.#logFile, `${stamped}\n`)
    if (this.#echo) console.log(stamped)
  }

  /** Always printed. */
  say(line: string): void {
    console.log(line)
    if (this.#logFile !== undefined) appendFileSync(this.#logFile, `${line}\n`)
  }

  violation(kind: string, detail: string): void {
    if (kind === 'lost') this.lost++
    else if (kind === 'corrupt') this.corrupt++
    else if (kind === 'resurrected') this.resurrected++
    this.violations.push({ seed: this.seed, kind, detail })
    this.say(`VIOLATION [${kind}] (seed ${this.seed}) ${detail}`)
  }

  failure(code: string | undefined): void {
    const c = code ?? 'untyped'
    this.errorCodes.set(c, (this.errorCodes.get(c) ?? 0) + 1)
  }

  figures(): string {
    return `faults: ${this.runs} runs, ${this.ops} ops, ${this.kills} kills, ${this.netfaults} network faults, ${this.bitflips} bit flips, ${this.partitions} partitions; lost ${this.lost}, corrupt reads ${this.corrupt}, resurrected ${this.resurrected}`
  }
}
