import type { SecureContextOptions } from 'node:tls'
import type { NodeIdentity } from '../identity/identity.js'

/** TLS 1.3 only, for both directions. */
export const TLS_VERSIONS = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const

/**
 * What both sides present: our certificate and key, TLS 1.3 only.
 * Chain verification stays off everywhere (certificates are self-signed):
 * peers are authenticated by admission and by the SPKI of the certificate
 * they presented, whose private key TLS has proved they hold.
 */
export function tlsCredentials(identity: NodeIdentity): SecureContextOptions {
  return {
    ...TLS_VERSIONS,
    key: identity.privateKey.export({ type: 'pkcs8', format: 'pem' }),
    cert: identity.certificate,
  }
}
