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
  if ((err as { code?: string }).code === 'EADDRINUSE' || /EADDRINUSE|address already in use/i.test(String(err))) {
    console.error('A port is taken: choose others with --ports A,B,C (0 picks a free one).')
  }
  process.exitCode = 1
}
