#!/bin/sh
':' //; exec node --initial-old-space-size=64 --max-semi-space-size=4 "$0" "$@"
// The `dcas` command. Run as a program, its first two lines are a shell script that starts Node.js
// with the flags of a dcas process (NODE_FLAGS of @dcas/server; a test keeps the two the same), as
// a `#!/usr/bin/env node` line cannot pass flags on every system (`env -S` is not POSIX). To
// Node.js the second line is a directive and a comment. `node dist/bin.js` runs without them.
import '../dist/bin.js'
