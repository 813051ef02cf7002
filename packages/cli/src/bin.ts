#!/usr/bin/env node
// The `dcas` executable.
import { runCli } from './cli.js'

process.exitCode = await runCli(process.argv.slice(2))
