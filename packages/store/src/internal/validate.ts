import { InvalidIdError, InvalidRangeError } from '../errors.js'

const ID = /^[0-9a-f]{64}$/

/** Whether `id` is 64 lowercase hex characters. */
export function isBlobId(id: unknown): id is string {
  return typeof id === 'string' && ID.test(id)
}

/** Throws `ERR_INVALID_ID` unless `id` is 64 lowercase hex characters. */
export function assertBlobId(id: unknown): asserts id is string {
  if (!isBlobId(id)) {
    const shown = typeof id === 'string' ? JSON.stringify(id.slice(0, 80)) : typeof id
    throw new InvalidIdError(`invalid blob id ${shown}: expected 64 lowercase hex characters`)
  }
}

function assertCount(name: string, value: unknown): asserts value is number | undefined {
  if (value === undefined) return
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidRangeError(`${name} must be a non-negative integer, got ${typeof value === 'number' ? value : typeof value}`)
  }
}

/** Checks the types of `offset` and `length` (before the blob's size is known). */
export function assertRangeOptions(offset: unknown, length: unknown): void {
  assertCount('offset', offset)
  assertCount('length', length)
}

/** Resolves `offset`/`length` against a blob of `size` bytes into `[start, end)`; throws `ERR_INVALID_RANGE` past the end. */
export function resolveRange(size: number, offset = 0, length?: number): { start: number; end: number } {
  if (offset > size) throw new InvalidRangeError(`offset ${offset} is past the end of a ${size}-byte blob`)
  const end = length === undefined ? size : offset + length
  if (end > size) throw new InvalidRangeError(`range ${offset}+${length} is past the end of a ${size}-byte blob`)
  return { start: offset, end }
}
