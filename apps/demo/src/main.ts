#!/usr/bin/env node
import { parseDemoArgs, USAGE } from './args.js'
import { runDemo } from './demo.js'

try {
  const options = parseDemoArgs(process.argv.slice(2))
  if (options.help) {
    console.log(USAGE)
  } else {
    await runDemo(options)
  }
} catch (err) {
  console.error(`dcas demo: ${err instanceof Error ? err.message : String(err)}`)
  const code = (err as { code?: string }).code
  if (code === 'ERR_ADDRESS_IN_USE' || code === 'EADDRINUSE') {
    console.error('A port is taken: choose others with --ports A,B,C (0 picks a free one).')
  }
  process.exitCode = 1
}
