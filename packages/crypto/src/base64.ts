// The unpadded, canonical standard base64 of age headers.

const ALPHABET = /^[A-Za-z0-9+/]*$/

/** Encodes without padding. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64').replace(/=+$/, '')
}

/**
 * Decodes unpadded base64, or returns `undefined` when the text has a character
 * outside the alphabet, padding, an impossible length, or non-zero unused bits.
 */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (text.length % 4 === 1 || !ALPHABET.test(text)) return undefined
  const bytes = Buffer.from(text, 'base64')
  // Canonical: re-encoding gives back the very text (no stray low bits in the last character).
  if (encodeBase64(bytes) !== text) return undefined
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}
