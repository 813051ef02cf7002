import { parseArgs } from 'node:util'

/** Where the three demo servers listen and keep their data. */
export interface DemoOptions {
  /** Ports of the three servers, in the original's order: first, second (dials first), third (dials both). */
  ports: [number, number, number]
  /** Parent folder of the three data directories; a fresh temporary folder when absent. */
  data?: string
  help: boolean
}

export const USAGE = `Usage: pnpm demo [--ports 8080,3030,7000] [--data DIR]

  --ports A,B,C  the three ports (default 8080,3030,7000): B dials A, C dials A and B; 0 picks a free one
  --data DIR     keep the three data directories under DIR (default: a fresh temporary folder)
  -h, --help     show this help`

/** Parses the demo's command line; throws a message fit for the user on bad input. */
export function parseDemoArgs(argv: string[]): DemoOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      ports: { type: 'string', default: '8080,3030,7000' },
      data: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  const ports = values.ports.split(',').map((p) => Number(p.trim()))
  if (ports.length !== 3 || ports.some((p) => !Number.isInteger(p) || p < 0 || p > 65535)) {
    throw new Error(`--ports takes three ports from 0 to 65535, separated by commas; got "${values.ports}"`)
  }
  const fixed = ports.filter((p) => p !== 0)
  if (new Set(fixed).size !== fixed.length) throw new Error(`--ports must name three different ports (0 may repeat); got "${values.ports}"`)
  return { ports: ports as [number, number, number], help: values.help, ...(values.data === undefined ? {} : { data: values.data }) }
}
