#!/usr/bin/env node
// The `dcas` program: `bin/dcas.js`, the command a package manager installs, starts it with the
// Node.js flags of a dcas process.
import { runCli } from './cli.js'

// A reader that stops early (`dcas status | head`) closes the pipe: the command ends quietly, as
// `git log | head` does, rather than die on EPIPE with a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0)
  throw err
})

process.exitCode = await runCli(process.argv.slice(2))
