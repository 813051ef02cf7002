// The Node.js flags a process that runs a dcas node should start with.

/**
 * Node.js flags for a process that runs a dcas node: the `dcas` command starts with them, and
 * `spawnNode` (from `@dcas/server/testing`) passes them to its child. An application that embeds a
 * `DcasServer` gives them to `node` itself, as V8 reads them only at start-up
 * (`v8.setFlagsFromString` comes too late, and `NODE_OPTIONS` refuses the first).
 *
 * - `--initial-old-space-size=64`: a node keeps tens of MiB of Buffers in flight (chunks, their
 *   ciphertext, TLS records) beside a JavaScript heap of about 10 MiB. V8 sizes the old
 *   generation's limit for that small heap and counts the Buffers against it, so it marks and
 *   compacts the whole heap over and over: about 50 full collections per 256 MiB stored, each
 *   finding next to nothing to free. With a floor of 64 MiB under the limit, about one.
 * - `--max-semi-space-size=4`: young-generation semi-spaces of 4 MiB instead of up to 16; it
 *   takes back most of the peak RSS that collecting less often adds, for the same CPU.
 *
 * Measured with `pnpm bench server`, with them against without (BENCHMARKS.md, "Seventh session"):
 * a 256 MiB store 65 → 81 MB/s and 26.9 → 20.0 CPU s/GB over the three processes.
 *
 * @example
 * ```sh
 * node --initial-old-space-size=64 --max-semi-space-size=4 my-app.js
 * ```
 */
export const NODE_FLAGS: readonly string[] = Object.freeze(['--initial-old-space-size=64', '--max-semi-space-size=4'])
