/**
 * rebind's HTTP/2 transport for gRPC: server.ts (the data port's side),
 * client.ts (the relay's side towards replicas); what both share: session.ts
 * (output queue, flow control, backpressure), hpack.ts and frames.ts (codec,
 * input bounds).
 */
export {
  createH2Server,
  EncodedHeaders,
  H2Connection,
  H2Counters,
  H2Headers,
  H2Stream,
  resolveH2Options,
  DEFAULT_ABUSE_WINDOW_MS,
  DEFAULT_CONNECTION_WINDOW_SIZE_BYTES,
  DEFAULT_H2_HEADER_TABLE_SIZE_BYTES,
  DEFAULT_H2_MAX_HEADER_LIST_SIZE_BYTES,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_INITIAL_WINDOW_SIZE_BYTES,
  DEFAULT_MAX_CONCURRENT_STREAMS,
  DEFAULT_MAX_CONTINUATION_FRAMES,
  DEFAULT_MAX_EMPTY_FRAMES_PER_WINDOW,
  DEFAULT_MAX_HEADER_BLOCK_BYTES,
  DEFAULT_MAX_QUEUED_OUTPUT_BYTES,
  DEFAULT_MAX_RESETS_PER_WINDOW,
  DEFAULT_MAX_STREAM_BUFFERED_OUTPUT_BYTES,
  DEFAULT_STREAM_HIGH_WATER_MARK_BYTES,
  type H2Options,
  type H2Server,
  type H2ServerOptions,
  type StreamHandler,
} from './server.js';
export {
  connectH2,
  H2ClientConnection,
  H2ClientCounters,
  H2ClientStream,
  resolveH2ClientOptions,
  splitHostPort,
  DEFAULT_CLIENT_CONNECTION_WINDOW_SIZE_BYTES,
  DEFAULT_CLIENT_INITIAL_WINDOW_SIZE_BYTES,
  DEFAULT_CLIENT_MAX_CONCURRENT_STREAMS,
  type H2ClientOptions,
  type H2ConnectOptions,
} from './client.js';
export { ErrorCode } from './frames.js';
export { HpackDecoder, HpackEncoder, HpackError, type HeadersInit } from './hpack.js';
