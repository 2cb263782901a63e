/**
 * Small pieces of the gRPC-over-HTTP/2 protocol that rebind's data plane
 * speaks directly on its own HTTP/2 transport's streams (src/h2; see
 * https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md).
 */
import { status as Status } from '@grpc/grpc-js';
import { ErrorCode, H2Headers, type EncodedHeaders, type H2Stream } from '../h2';
import { MAX_TIMER_DELAY_MS } from './long-timer';

/** A grpc-message that needs no percent-encoding: printable ASCII without '%'. */
const PLAIN_GRPC_MESSAGE = /^[\x20-\x24\x26-\x7e]*$/;

/** Percent-encodes a grpc-message value as the spec requires. */
export function encodeGrpcMessage(message: string): string {
  // Most messages (every forward's) are plain: one regex test instead of a Buffer and a string per byte.
  if (PLAIN_GRPC_MESSAGE.test(message)) return message;
  const bytes = Buffer.from(message, 'utf8');
  let out = '';
  for (const byte of bytes) {
    if (byte >= 0x20 && byte <= 0x7e && byte !== 0x25) out += String.fromCharCode(byte);
    else out += '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** Headers that must not be copied from one HTTP/2 hop to the next. */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);

/** The fields of a Trailers-Only gRPC response (status, message, extra trailers). */
function trailersOnlyFields(code: Status, message: string, extra: Record<string, string>): Record<string, string | number> {
  return { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message), ...extra };
}

/**
 * The header block of a Trailers-Only response with `code`, `message` and
 * `extra` trailers, HPACK-encoded once (no dynamic table: valid on any
 * connection): build it once and answer every stream that says the same
 * with {@link respondPrepared}.
 */
export function trailersOnly(code: Status, message: string, extra: Record<string, string> = {}): EncodedHeaders {
  return H2Headers.encode(trailersOnlyFields(code, message, extra));
}

/**
 * Answers a stream that has sent nothing yet with a block from
 * {@link trailersOnly}: one HEADERS frame with END_STREAM. The rest of the
 * request body, if any, is discarded by the transport.
 */
export function respondPrepared(stream: H2Stream, block: EncodedHeaders): void {
  if (stream.closed || stream.headersSent) return;
  stream.respond(block, END_STREAM);
}

const END_STREAM = Object.freeze({ endStream: true });

/**
 * Answers a stream with a Trailers-Only gRPC response: one HEADERS frame
 * with END_STREAM carrying the status and any extra trailers; a stream whose
 * response has started is ended with those trailers instead.
 */
export function respondTrailersOnly(stream: H2Stream, code: Status, message: string, extra: Record<string, string> = {}): void {
  if (stream.closed) return;
  if (stream.headersSent) {
    if (!stream.writableEnded) stream.end({ 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message), ...extra });
    return;
  }
  stream.respond(trailersOnlyFields(code, message, extra), END_STREAM);
}

/** gRPC status for a stream reset with the given HTTP/2 error code (spec table). */
export function statusForRstCode(rstCode: number): Status {
  switch (rstCode) {
    case ErrorCode.NO_ERROR:
    case ErrorCode.REFUSED_STREAM:
      return Status.UNAVAILABLE;
    case ErrorCode.CANCEL:
      return Status.CANCELLED;
    case ErrorCode.ENHANCE_YOUR_CALM:
      return Status.RESOURCE_EXHAUSTED;
    case ErrorCode.INADEQUATE_SECURITY:
      return Status.PERMISSION_DENIED;
    default:
      return Status.INTERNAL;
  }
}

/** Parses a grpc-timeout header ("100m", "5S") into milliseconds, or null. */
export function parseGrpcTimeoutMs(value: string | string[] | undefined): number | null {
  if (typeof value !== 'string') return null;
  const match = /^([0-9]{1,8})([HMSmun])$/.exec(value);
  if (match === null) return null;
  const amount = Number(match[1]);
  switch (match[2]) {
    case 'H':
      return amount * 3_600_000;
    case 'M':
      return amount * 60_000;
    case 'S':
      return amount * 1000;
    case 'm':
      return amount;
    case 'u':
      return amount / 1000;
    default:
      return amount / 1_000_000;
  }
}

/**
 * A grpc-timeout value for `ms` that a receiver's 32-bit timer can hold:
 * longer timeouts are capped at MAX_TIMER_DELAY_MS (about 24.8 days).
 * grpc-js servers (~1.14) truncate a timeout to 32 bits, so "600H" (or a
 * 30-day deadline) fails there at once with DEADLINE_EXCEEDED; the proxy
 * forwards the capped value and enforces the full deadline itself.
 */
export function encodeGrpcTimeoutCapped(ms: number): string {
  const capped = Math.max(0, Math.min(ms, MAX_TIMER_DELAY_MS));
  // At most 8 digits (gRPC over HTTP/2 spec).
  return capped <= 99_999_999 ? `${Math.ceil(capped)}m` : `${Math.floor(capped / 1000)}S`;
}
