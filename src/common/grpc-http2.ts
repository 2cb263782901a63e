/**
 * Small pieces of the gRPC-over-HTTP/2 protocol that rebind's data plane
 * speaks directly on node:http2 streams (see
 * https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md).
 */
import * as http2 from 'node:http2';
import { status as Status } from '@grpc/grpc-js';
import { MAX_TIMER_DELAY_MS } from './long-timer';

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INADEQUATE_SECURITY, NGHTTP2_NO_ERROR } = http2.constants;

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

/** Copies the non-pseudo, end-to-end headers of a header block. */
export function endToEndHeaders(headers: http2.IncomingHttpHeaders): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const key of Object.keys(headers)) {
    if (key.charCodeAt(0) === 58 /* ':' */ || HOP_BY_HOP.has(key)) continue;
    out[key] = headers[key];
  }
  return out;
}

/**
 * Options of every Trailers-Only answer: the response ends with its one
 * HEADERS frame, and it carries no `date` header (Node adds one by default:
 * 35 bytes a response that HPACK cannot index for more than a second, and
 * work per response; gRPC does not use it).
 */
const TRAILERS_ONLY_OPTIONS: http2.ServerStreamResponseOptions = Object.freeze({ endStream: true, sendDate: false });

/**
 * The header block of a Trailers-Only response with `code`, `message` and
 * `extra` trailers, ready for {@link respondPrepared}: build it once and
 * reuse it for every answer that says the same (Node copies it; it is never
 * changed).
 */
export function trailersOnlyHeaders(code: Status, message: string, extra: Record<string, string> = {}): Readonly<http2.OutgoingHttpHeaders> {
  return Object.freeze({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message), ...extra });
}

/**
 * Answers a stream that has sent nothing yet with a header block from
 * {@link trailersOnlyHeaders}; falls back to {@link respondTrailersOnly} for
 * one whose response has started.
 */
export function respondPrepared(stream: http2.ServerHttp2Stream, headers: Readonly<http2.OutgoingHttpHeaders>): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    // The response has started; end it with the same trailers instead.
    if (!stream.writableEnded) {
      const { ':status': _status, 'content-type': _type, ...trailers } = headers;
      stream.once('wantTrailers', () => stream.sendTrailers(trailers));
      stream.end();
    }
    return;
  }
  stream.respond(headers, TRAILERS_ONLY_OPTIONS);
  // Discard whatever request data still arrives.
  stream.resume();
}

/**
 * Answers a stream with a Trailers-Only gRPC response: one HEADERS frame
 * with END_STREAM carrying the status and any extra trailers.
 */
export function respondTrailersOnly(
  stream: http2.ServerHttp2Stream,
  code: Status,
  message: string,
  extra: Record<string, string> = {},
): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    // The response has started; end it with trailers instead.
    if (!stream.writableEnded) {
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message), ...extra }));
      stream.end();
    }
    return;
  }
  stream.respond(
    {
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': String(code),
      'grpc-message': encodeGrpcMessage(message),
      ...extra,
    },
    TRAILERS_ONLY_OPTIONS,
  );
  // Discard whatever request data still arrives.
  stream.resume();
}

/** gRPC status for a stream reset with the given HTTP/2 error code (spec table). */
export function statusForRstCode(rstCode: number): Status {
  switch (rstCode) {
    case NGHTTP2_NO_ERROR:
    case NGHTTP2_REFUSED_STREAM:
      return Status.UNAVAILABLE;
    case NGHTTP2_CANCEL:
      return Status.CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return Status.RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY:
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
