/**
 * @packageDocumentation
 *
 * The `dcas` command line and daemon: `dcas init` creates a node, `dcas serve`
 * runs it with a local HTTP API (bearer token, Prometheus metrics), and `put`,
 * `get`, `rm`, `ls`, `stat`, `status` and `scrub` talk to it. The same pieces are
 * exported for programs: {@link initNode}, {@link startDaemon}, {@link connect}.
 *
 * @example
 * ```ts
 * import { connect, initNode, startDaemon } from '@dcas/cli'
 *
 * await initNode({ root: './node-a', listen: '127.0.0.1:0', http: '127.0.0.1:0' })
 * const daemon = await startDaemon({ root: './node-a' })
 * const client = await connect({ root: './node-a' })
 * await client.put('hello.txt', 'hello, dcas')
 * const { body } = await client.get('hello.txt')
 * for await (const chunk of body) process.stdout.write(chunk)
 * await daemon.close()
 * ```
 */

export { runCli } from './cli.js'
export type { CliIO } from './cli.js'
export { initNode, exportIdentity, loadNode, MIN_CLUSTER_SECRET_LENGTH } from './init.js'
export type { InitOptions, InitResult } from './init.js'
export { startDaemon } from './daemon.js'
export type { Daemon, DaemonOptions } from './daemon.js'
export { readApiFile } from './api-file.js'
export type { ApiFile } from './api-file.js'
export { VERSION } from './version.js'
export { connect } from './client.js'
export type { ConnectOptions, DcasClient, GetOptions, GetResult, ObjectInfo, PutData, PutOptions, TransferOptions } from './client.js'
export { createApi } from './http.js'
export type { ApiErrorBody, ApiOptions, ListPage } from './http.js'
export { createMetrics } from './metrics.js'
export type { NodeMetrics, Operation } from './metrics.js'
export type { DiskUsage, LaggingObject, LaggingPage, NodeStatus, PeerStatus, ReplicaHealth, ReplicationStatus } from './status.js'
export { ConsoleCredentials, DEFAULT_CREDENTIAL_LIMITS } from './sessions.js'
export type { CredentialLimits } from './sessions.js'
export { createLogger, LOG_LEVELS } from './logger.js'
export type { Logger, LoggerOptions } from './logger.js'
export { DEFAULT_CONFIG, readConfig } from './config.js'
export type { NodeConfig } from './config.js'
export {
  AbortedError,
  AlreadyInitializedError,
  AlreadyRunningError,
  ApiError,
  CLI_ERROR_CODES,
  CliError,
  ConfigError,
  EXIT_CODES,
  IntegrityError,
  InvalidKeyError,
  ListenError,
  NotFoundError,
  NotInitializedError,
  NotRunningError,
  QuorumError,
  UnauthorizedError,
  UnavailableError,
  UsageError,
} from './errors.js'
export type { CliErrorCode, CliErrorOptions, QuorumDetails } from './errors.js'
