#!/usr/bin/env node
// Stops what a CI stage left running: every process of this session (`.ci/run` runs in a session of
// its own) but the given shell and this script. A node, browser or daemon a failed test left behind
// would otherwise keep running, and keep the output pipe of CI open after the script ended.
// Linux only (reads /proc); elsewhere it does nothing.
import { readdirSync, readFileSync } from 'node:fs'

const keep = new Set([process.pid, process.ppid, Number(process.argv[2])])

/** Fields of /proc/PID/stat after the command name (which may hold spaces and parentheses). */
function statOf(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return text.slice(text.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined
  }
}

const own = statOf(process.pid)
if (own === undefined) process.exit(0)
const session = own[3]
let stopped = 0
for (const name of readdirSync('/proc')) {
  const pid = Number(name)
  if (!Number.isInteger(pid) || keep.has(pid)) continue
  const stat = statOf(pid)
  // A zombie has exited already (only its parent can reap it): nothing runs to stop.
  if (stat === undefined || stat[3] !== session || stat[0] === 'Z') continue
  let command = ''
  try {
    command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim().slice(0, 160)
  } catch {
    // gone meanwhile
  }
  try {
    process.kill(pid, 'SIGKILL')
    stopped++
    console.log(`ci: stopped a process left running: ${pid} ${command}`)
  } catch {
    // gone meanwhile
  }
}
if (stopped > 0) console.log(`ci: ${stopped} process(es) left running were stopped`)
