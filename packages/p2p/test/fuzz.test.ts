// fast-check fuzzing of the frame decoder and of a muxed connection fed random
// and mutated frames: only typed errors, no hang, nothing buffered beyond the
// bounds. `pnpm fuzz` runs it long (DCAS_FUZZ_RUNS=100000); `pnpm test` briefly.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createMemoryDuplexPair, createMuxedConnection, P2PError, type Stream } from '../src/index.js'
import {
  FLAG_ACK,
  FLAG_FIN,
  FLAG_RST,
  FLAG_SYN,
  FrameDecoder,
  HEADER_LENGTH,
  INITIAL_STREAM_WINDOW,
  TYPE_DATA,
  TYPE_GO_AWAY,
  TYPE_PING,
  TYPE_WINDOW_UPDATE,
  encodeHeader,
} from '../src/muxer/frame.js'
import { internals } from './mux-helpers.js'

const runs = Number(process.env.DCAS_FUZZ_RUNS ?? 0)
const decoderRuns = runs > 0 ? runs : 3000
const connectionRuns = runs > 0 ? runs : 1000
const timeout = runs > 0 ? 3_600_000 : 60_000

const DECODER_CODES = new Set(['ERR_PROTOCOL', 'ERR_FRAME_TOO_LARGE'])
const CONNECTION_CODES = new Set(['ERR_PROTOCOL', 'ERR_FRAME_TOO_LARGE', 'ERR_TOO_MANY_STREAMS', 'ERR_CONNECTION_CLOSED'])
const MAX_DATA = 1024 * 1024

interface FrameSpec {
  type: number
  flags: number
  streamId: number
  payload: Uint8Array
  /** The header's length field; absent, the payload's length (data) or 0. */
  length: number | undefined
}

/** A frame as the fuzzer describes it: mostly plausible, sometimes not. */
const frameArb: fc.Arbitrary<FrameSpec> = fc.record({
  type: fc.oneof({ arbitrary: fc.constantFrom(TYPE_DATA, TYPE_WINDOW_UPDATE, TYPE_PING, TYPE_GO_AWAY), weight: 20 }, { arbitrary: fc.integer({ min: 0, max: 255 }), weight: 1 }),
  flags: fc.oneof(
    { arbitrary: fc.constantFrom(0, FLAG_SYN, FLAG_ACK, FLAG_FIN, FLAG_RST, FLAG_SYN | FLAG_FIN), weight: 20 },
    { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
  ),
  streamId: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 9 }), weight: 20 }, { arbitrary: fc.integer({ min: 0, max: 0xffffffff }), weight: 1 }),
  payload: fc.uint8Array({ maxLength: 64 }),
  length: fc.option(fc.oneof(fc.integer({ min: 0, max: 300_000 }), fc.integer({ min: 0, max: 0xffffffff })), { nil: undefined, freq: 4 }),
})

/** A plausible session from the remote: opens streams with fresh ids, then data, windows, FIN, RST, pings, go-away. */
const sessionArb: fc.Arbitrary<FrameSpec[]> = fc
  .array(
    fc.record({
      op: fc.constantFrom('open', 'open', 'data', 'data', 'data', 'window', 'fin', 'rst', 'ping', 'goaway'),
      stream: fc.nat(7),
      size: fc.oneof(fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 0, max: 40_000 })),
    }),
    { maxLength: 20 },
  )
  .map((ops) => {
    const frames: FrameSpec[] = []
    const opened: number[] = []
    let next = 1
    for (const { op, stream, size } of ops) {
      const id = opened.length === 0 ? next : opened[stream % opened.length]!
      const f = (type: number, flags: number, streamId: number, payload = new Uint8Array(0), length?: number): void => {
        frames.push({ type, flags, streamId, payload, length })
      }
      if (op === 'open' || opened.length === 0) {
        opened.push(next)
        f(TYPE_DATA, FLAG_SYN, next, new Uint8Array(size % 64).fill(next))
        next += 2
      } else if (op === 'data') f(TYPE_DATA, 0, id, new Uint8Array(size).fill(size & 0xff))
      else if (op === 'window') f(TYPE_WINDOW_UPDATE, 0, id, undefined, size)
      else if (op === 'fin') f(TYPE_WINDOW_UPDATE, FLAG_FIN, id)
      else if (op === 'rst') f(TYPE_WINDOW_UPDATE, FLAG_RST, id)
      else if (op === 'ping') f(TYPE_PING, FLAG_SYN, 0, undefined, size)
      else f(TYPE_GO_AWAY, 0, 0, undefined, 0)
    }
    return frames
  })

/** Random frames or a plausible session. */
const framesArb = fc.oneof(fc.array(frameArb, { maxLength: 16 }), sessionArb)

function encode(frames: FrameSpec[]): Buffer {
  const parts: Buffer[] = []
  for (const f of frames) {
    const isData = (f.type & 0xff) === TYPE_DATA
    const length = f.length ?? (isData ? f.payload.length : 0)
    parts.push(encodeHeader(f.type & 0xff, f.flags & 0xffff, f.streamId >>> 0, length >>> 0))
    // A data frame carries its payload (possibly shorter than its length: then the stream ends mid-frame).
    if (isData) parts.push(Buffer.from(f.payload.buffer, f.payload.byteOffset, Math.min(f.payload.length, length)))
  }
  return Buffer.concat(parts)
}

/** Flips, overwrites, drops or duplicates bytes of a valid encoding. */
const mutationArb = fc.array(
  fc.record({
    kind: fc.constantFrom('flip', 'set', 'drop', 'dup'),
    at: fc.nat(),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  { maxLength: 4 },
)

function mutate(bytes: Buffer, mutations: { kind: string; at: number; value: number }[]): Buffer {
  let out = Buffer.from(bytes)
  for (const m of mutations) {
    if (out.length === 0) break
    const at = m.at % out.length
    if (m.kind === 'flip') out[at] = out[at]! ^ (1 << (m.value & 7))
    else if (m.kind === 'set') out[at] = m.value
    else if (m.kind === 'drop') out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)])
    else out = Buffer.concat([out.subarray(0, at), out.subarray(at, at + HEADER_LENGTH), out.subarray(at)])
  }
  return out
}

/** Cuts `bytes` into pieces at the given offsets. */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((x, y) => x - y)
  const pieces: Buffer[] = []
  let from = 0
  for (const point of points) {
    pieces.push(bytes.subarray(from, point))
    from = point
  }
  pieces.push(bytes.subarray(from))
  return pieces
}

/** Feeds the decoder; returns the error code it stopped with, if any, checking every invariant on the way. */
function decode(pieces: Buffer[]): string | undefined {
  let expected = 0
  let got = 0
  const decoder = new FrameDecoder(
    {
      frame(type, _flags, _id, length) {
        expect(type).toBeLessThanOrEqual(TYPE_GO_AWAY)
        if (type === TYPE_DATA) {
          expect(length).toBeLessThanOrEqual(MAX_DATA)
          expected = length
          got = 0
        }
      },
      data(piece) {
        got += piece.length
        expect(got).toBeLessThanOrEqual(expected)
      },
      dataEnd() {
        expect(got).toBe(expected)
      },
    },
    MAX_DATA,
  )
  for (const piece of pieces) {
    try {
      decoder.push(piece)
    } catch (err) {
      if (!(err instanceof P2PError)) throw err
      return err.code
    }
  }
  return undefined
}

describe('fuzzing the frame decoder', () => {
  it('meets random bytes with frames or a typed error, in any split', { timeout }, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
        const code = decode(split(Buffer.from(bytes), cuts))
        if (code !== undefined) expect(DECODER_CODES).toContain(code)
      }),
      { numRuns: decoderRuns },
    )
  })

  it('meets mutated frames with frames or a typed error, in any split', { timeout }, () => {
    fc.assert(
      fc.property(framesArb, mutationArb, fc.array(fc.nat(), { maxLength: 8 }), (frames, mutations, cuts) => {
        const code = decode(split(mutate(encode(frames), mutations), cuts))
        if (code !== undefined) expect(DECODER_CODES).toContain(code)
      }),
      { numRuns: decoderRuns },
    )
  })
})

/** Reads a stream to its end; resolves to its error, if it fails. */
async function drain(stream: Stream): Promise<unknown> {
  try {
    for await (const chunk of stream) expect(chunk.length).toBeGreaterThan(0)
  } catch (err) {
    return err
  }
  return undefined
}

describe('fuzzing a muxed connection', () => {
  it('closes on mutated frame sequences with a typed error or cleanly, never hangs, and buffers within the windows', { timeout }, async () => {
    await fc.assert(
      fc.asyncProperty(framesArb, mutationArb, fc.array(fc.nat(), { maxLength: 6 }), fc.boolean(), async (frames, mutations, cuts, readStreams) => {
        const [socket, raw] = createMemoryDuplexPair()
        raw.resume() // discard what the muxer answers
        const connection = createMuxedConnection(socket, { direction: 'inbound', remoteNodeId: 'f'.repeat(64), remoteAddress: 'fuzz:1', maxStreams: 4 })
        const streams: Stream[] = []
        const reading: Promise<unknown>[] = []
        const accepting = (async () => {
          for await (const stream of connection.incoming) {
            streams.push(stream)
            // Never more live streams than maxStreams.
            expect(streams.filter((s) => !internals(s).removed).length).toBeLessThanOrEqual(4)
            if (readStreams) reading.push(drain(stream))
          }
        })()
        for (const piece of split(mutate(encode(frames), mutations), cuts)) raw.write(piece)
        raw.end()
        const error = await connection.closed
        if (error !== undefined) {
          expect(error).toBeInstanceOf(P2PError)
          expect(CONNECTION_CODES).toContain((error as P2PError).code)
        }
        await accepting
        for (const result of await Promise.all(reading)) {
          if (result !== undefined) expect(result).toBeInstanceOf(P2PError)
        }
        for (const stream of streams) expect(internals(stream).bufferedBytes).toBeLessThanOrEqual(INITIAL_STREAM_WINDOW)
      }),
      { numRuns: connectionRuns },
    )
  })
})
