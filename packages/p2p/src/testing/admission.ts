/**
 * The admission protocol's pieces, byte for byte, for tools that must speak it by hand:
 * adversarial suites that play a hostile dialler (a wrong secret, no share, bytes
 * pipelined behind the hello, a recorded handshake tested offline). Applications use
 * `tcpTransport`, which runs all of it. No test framework is imported here.
 *
 * @example
 * ```ts
 * import { confirmation, encodeConfirm, encodeHello, readConfirm, readHello, sessionIdOf, startCpace, stretchClusterSecret, transcriptOf } from '@dcas/p2p/testing/admission'
 *
 * // `socket`: a TLS 1.3 client socket to a dcas node, after 'secureConnect'.
 * const cpace = startCpace(await stretchClusterSecret(new TextEncoder().encode(guess)), sessionIdOf(socket))
 * const ourHello = encodeHello({ versions: [2], share: cpace.share })
 * socket.write(ourHello)
 * const theirHello = await readHello(socket, AbortSignal.timeout(10_000))
 * const key = cpace.sharedKey(theirHello.share!, transcriptOf(ourHello, encodeHello(theirHello)))!
 * socket.write(encodeConfirm(confirmation(key, 'outbound')))
 * const tag = await readConfirm(socket, AbortSignal.timeout(10_000)) // equals confirmation(key, 'inbound') only if the guess was right
 * ```
 *
 * @packageDocumentation
 */
export {
  encodeConfirm,
  encodeHello,
  encodeVerdict,
  PROTOCOL_VERSIONS,
  readConfirm,
  readExactly,
  readHello,
  sessionIdOf,
  Status,
  type Hello,
} from '../tcp/admission.js'
export { stretchClusterSecret } from '../tcp/cluster-secret.js'
export { confirmation, startCpace, transcriptOf, type CpaceSide } from '../tcp/cpace.js'
