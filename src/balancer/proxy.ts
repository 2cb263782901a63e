/**
 * The per-request path (TAO's front-end dispatcher, Karagkasidis's Front-End
 * Dispatcher): one incoming gRPC stream is relayed to a replica over a
 * pooled HTTP/2 connection, headers, DATA frames and trailers piped as they
 * are. The proxy never decodes gRPC framing or messages, so it needs no
 * .proto files and handles all four call kinds alike.
 */
import * as http2 from 'node:http2';
import { status as Status } from '@grpc/grpc-js';
import type { Logger } from '../common/logger';
import { endToEndHeaders, parseGrpcTimeoutMs, respondTrailersOnly, statusForRstCode } from '../common/grpc-http2';
import { PROXIED_HEADER, REBIND_TRAILERS } from '../common/wire';

function withoutRebindTrailers(headers: http2.OutgoingHttpHeaders): http2.OutgoingHttpHeaders {
  for (const name of REBIND_TRAILERS) delete headers[name];
  return headers;
}

const { NGHTTP2_CANCEL, HTTP2_HEADER_STATUS } = http2.constants;

/** One HTTP/2 connection per replica address, re-opened when it fails. */
export class UpstreamPool {
  private readonly sessions = new Map<string, http2.ClientHttp2Session>();

  /** `ca`: replicas serve TLS with certificates chaining to it; null: plaintext. */
  constructor(
    private readonly log: Logger,
    private readonly ca: Buffer | null = null,
  ) {}

  session(address: string): http2.ClientHttp2Session {
    const existing = this.sessions.get(address);
    if (existing !== undefined && !existing.closed && !existing.destroyed) return existing;
    const session =
      this.ca === null
        ? http2.connect(`http://${address}`, { settings: { enablePush: false } })
        : http2.connect(`https://${address}`, { settings: { enablePush: false }, ca: this.ca, ALPNProtocols: ['h2'] });
    const drop = () => {
      if (this.sessions.get(address) === session) this.sessions.delete(address);
    };
    session.on('error', (err) => {
      this.log.debug({ address, err: err.message }, 'upstream connection error');
      drop();
    });
    session.on('goaway', drop);
    session.on('close', drop);
    session.unref();
    this.sessions.set(address, session);
    return session;
  }

  get scheme(): 'http' | 'https' {
    return this.ca === null ? 'http' : 'https';
  }

  /** Closes the connection to one address (its member left). */
  release(address: string): void {
    const session = this.sessions.get(address);
    if (session !== undefined) {
      this.sessions.delete(address);
      session.close();
    }
  }

  close(): void {
    for (const session of this.sessions.values()) session.destroy();
    this.sessions.clear();
  }
}

export interface ProxyOutcome {
  /** Called once when the proxied call is over, whatever the outcome. */
  done(): void;
}

/**
 * Relays `stream` to `address`. The caller has already chosen the member;
 * `outcome.done` is called exactly once at the end.
 */
export function proxyStream(
  pool: UpstreamPool,
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  address: string,
  outcome: ProxyOutcome,
  /** The member's proxy secret: the rebind-proxied value that tells it the balancer proxied this call. */
  proxiedMarker: string,
): void {
  let finished = false;
  let responded = false;
  let deadlineTimer: NodeJS.Timeout | null = null;
  const finish = () => {
    if (finished) return;
    finished = true;
    if (deadlineTimer !== null) clearTimeout(deadlineTimer);
    outcome.done();
  };

  const outHeaders = endToEndHeaders(headers);
  outHeaders[':method'] = 'POST';
  outHeaders[':path'] = headers[':path'];
  outHeaders[':scheme'] = pool.scheme;
  outHeaders[':authority'] = address;
  outHeaders[PROXIED_HEADER] = proxiedMarker;

  let upstream: http2.ClientHttp2Stream;
  try {
    upstream = pool.session(address).request(outHeaders, { endStream: false });
  } catch (err) {
    respondTrailersOnly(stream, Status.UNAVAILABLE, `rebind: cannot reach replica ${address}: ${(err as Error).message}`);
    finish();
    return;
  }

  const fail = (code: Status, message: string) => {
    if (!upstream.destroyed) upstream.close(NGHTTP2_CANCEL);
    if (!stream.destroyed && !stream.closed) {
      if (!stream.headersSent) respondTrailersOnly(stream, code, message);
      else stream.close(code === Status.CANCELLED ? NGHTTP2_CANCEL : http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
    finish();
  };

  const timeoutMs = parseGrpcTimeoutMs(headers['grpc-timeout']);
  if (timeoutMs !== null) {
    deadlineTimer = setTimeout(() => fail(Status.DEADLINE_EXCEEDED, `rebind: deadline of ${timeoutMs} ms exceeded while proxying to ${address}`), timeoutMs);
  }

  // Request direction: client -> replica, with backpressure.
  stream.pipe(upstream);
  stream.on('error', () => undefined);
  stream.on('close', () => {
    if (!finished) {
      // The client went away (cancel, deadline on its side, connection loss).
      if (!upstream.destroyed) upstream.close(NGHTTP2_CANCEL);
      finish();
    }
  });

  // Response direction: replica -> client.
  let trailers: http2.IncomingHttpHeaders | null = null;
  upstream.on('response', (responseHeaders, flags) => {
    if (stream.destroyed || stream.closed) return;
    responded = true;
    // A replica never forwards a proxied call: rebind's own trailers on a relayed
    // response can only be forged, and must not reach the client as the balancer's.
    const out = withoutRebindTrailers(endToEndHeaders(responseHeaders));
    out[HTTP2_HEADER_STATUS] = responseHeaders[HTTP2_HEADER_STATUS] ?? 200;
    const trailersOnly = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    if (trailersOnly) {
      stream.respond(out, { endStream: true });
      stream.resume();
      finish();
    } else {
      stream.respond(out, { waitForTrailers: true });
    }
  });
  upstream.on('data', (chunk: Buffer) => {
    if (stream.destroyed || stream.closed || !stream.headersSent) return;
    if (!stream.write(chunk)) upstream.pause();
  });
  stream.on('drain', () => upstream.resume());
  upstream.on('trailers', (t) => {
    trailers = t;
  });
  stream.on('wantTrailers', () => {
    if (trailers !== null) stream.sendTrailers(withoutRebindTrailers(endToEndHeaders(trailers)));
    else stream.sendTrailers({ 'grpc-status': String(Status.INTERNAL), 'grpc-message': `rebind: replica ${address} ended the response without trailers` });
  });
  upstream.on('end', () => {
    if (responded && stream.headersSent && !stream.writableEnded && !stream.destroyed) stream.end();
  });
  upstream.on('error', (err) => {
    fail(Status.UNAVAILABLE, `rebind: replica ${address} failed: ${err.message}`);
  });
  upstream.on('close', () => {
    if (finished) return;
    const rst = upstream.rstCode ?? 0;
    if (!responded) {
      fail(rst === 0 ? Status.UNAVAILABLE : statusForRstCode(rst), `rebind: replica ${address} closed the call before answering (HTTP/2 code ${rst})`);
    } else if (rst !== 0 && !stream.writableEnded) {
      fail(statusForRstCode(rst), `rebind: replica ${address} reset the call (HTTP/2 code ${rst})`);
    } else {
      // Normal end: wait for our own side to finish sending trailers.
      if (stream.closed || stream.destroyed) finish();
      else stream.once('close', finish);
    }
  });
}
