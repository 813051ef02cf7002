#!/usr/bin/env node
import { parseDemoArgs, USAGE } from './args.js'

const options = parseDemoArgs(process.argv.slice(2))
if (options.help) {
  console.log(USAGE)
} else {
  console.error('The dcas demo needs @dcas/server, which is not built yet (issue #6).')
  process.exitCode = 1
}
