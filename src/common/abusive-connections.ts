/**
 * Connections that keep sending what gets refused. Refusing a request is
 * cheap, but not free: a party that opens stream after stream only to be
 * refused (a proxied-call limit, an ORCA stream cap, a path no group serves)
 * makes the process allocate and collect per-stream state as fast as it can
 * send. Past a bound of refusals per connection within a window, the
 * connection itself is closed (GOAWAY ENHANCE_YOUR_CALM, as nghttp2 and
 * Envoy do for HTTP/2 abuse), so each further attempt costs the sender a new
 * connection.
 */
import * as http2 from 'node:http2';
import { performance } from 'node:perf_hooks';

/** Refusals one connection may collect within {@link ABUSE_WINDOW_MS} before it is closed. */
export const DEFAULT_MAX_REFUSALS_PER_CONNECTION = 50;
/** Window over which a connection's refusals are counted, ms. */
export const ABUSE_WINDOW_MS = 10_000;

/** A connection AbusiveConnections can count refusals on and close. */
export interface AbuseTarget {
  readonly destroyed: boolean;
}

/**
 * Counts refusals per connection: a node:http2 session (the ORCA server's,
 * by default) or, with another `close`, the data port's H2Connection.
 */
export class AbusiveConnections<C extends AbuseTarget = http2.Http2Session> {
  private readonly counts = new WeakMap<C, { refusals: number; sinceMs: number }>();

  constructor(
    private readonly maxRefusals = DEFAULT_MAX_REFUSALS_PER_CONNECTION,
    private readonly windowMs = ABUSE_WINDOW_MS,
    private readonly nowMs: () => number = () => performance.now(),
    /** Closes an abusive connection (GOAWAY ENHANCE_YOUR_CALM). */
    private readonly close: (connection: C) => void = closeConnection as unknown as (connection: C) => void,
  ) {}

  /**
   * Counts one refusal on `session` (a stream's connection); closes the
   * connection and returns true when that puts it over the bound.
   */
  refused(session: C | undefined): boolean {
    if (session === undefined || session.destroyed) return false;
    const now = this.nowMs();
    let entry = this.counts.get(session);
    if (entry === undefined || now - entry.sinceMs >= this.windowMs) {
      entry = { refusals: 0, sinceMs: now };
      this.counts.set(session, entry);
    }
    if (++entry.refusals <= this.maxRefusals) return false;
    this.counts.delete(session);
    this.close(session);
    return true;
  }
}

/**
 * Closes a connection, telling the peer why (GOAWAY ENHANCE_YOUR_CALM). On
 * the next turn of the event loop: destroying a session from inside one of
 * its own stream callbacks (nghttp2 is still processing its frames) aborts
 * the process with a corrupted heap (seen on Node 20).
 */
export function closeConnection(session: http2.Http2Session): void {
  setImmediate(() => {
    if (session.destroyed) return;
    try {
      session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    } catch {
      // already closing
    }
    session.destroy();
  });
}
