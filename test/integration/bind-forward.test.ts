/**
 * The forward a bind is answered with (issue 15: a bind's cost), over a real
 * HTTP/2 connection to the data port: what it carries, that it carries no
 * `date` header (Node adds one by default), and that the forward prepared
 * once per member follows the key ring when it rotates.
 */
import * as http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import type { Balancer } from '../../src/index';
import {
  BALANCER_KEY_TRAILER,
  BALANCER_KEYS_TRAILER,
  clientUserAgent,
  FORWARD_REASON_TRAILER,
  FORWARD_STATUS,
  FORWARD_TRAILER,
  VOUCH_TRAILER,
} from '../../src/common/wire';
import { balancerKey, checkVoucher } from '../../src/interceptors/vouch-check';
import { startBalancer, startReplica, stopReplica } from '../support/cluster';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

/** One bind by a new rebind client: the response header block (Trailers-Only). */
function bind(session: http2.ClientHttp2Session, clientId: string): Promise<http2.IncomingHttpHeaders> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':method': 'POST', ':path': '/rebind.test.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers', 'user-agent': clientUserAgent(clientId) });
    s.on('response', (h) => resolve(h));
    s.on('error', reject);
    s.resume();
    s.end();
  });
}

async function setUp(): Promise<{ balancer: Balancer; address: string; session: http2.ClientHttp2Session }> {
  const balancer = await startBalancer([{ name: 'echo', granularity: 'per-session', strategy: 'round_robin', reportIntervalMs: 200 }]);
  cleanups.push(() => balancer.stop());
  const r = await startReplica(balancer, 'A');
  cleanups.push(() => stopReplica(r));
  const session = http2.connect(`http://${balancer.address}`);
  cleanups.push(() => void session.destroy());
  return { balancer, address: r.address, session };
}

describe("a bind's forward", () => {
  it('is Trailers-Only with the forward, a voucher the balancer key verifies, and no date header', async () => {
    const { balancer, address, session } = await setUp();
    for (const id of ['client-0001', 'client-0002']) {
      const h = await bind(session, id);
      expect(h[':status']).toBe(200);
      expect(h['grpc-status']).toBe(String(FORWARD_STATUS));
      expect(h['grpc-message']).toBe(`rebind: forward to ${address}`);
      expect(h[FORWARD_TRAILER]).toBe(address);
      expect(h[FORWARD_REASON_TRAILER]).toBe('bind');
      expect(h[BALANCER_KEY_TRAILER]).toBe(balancer.voucher.publicKey);
      expect(h[BALANCER_KEYS_TRAILER]).toBe(balancer.voucher.publicKeysTrailer);
      expect(checkVoucher(balancerKey(String(h[BALANCER_KEY_TRAILER])), 'echo', address, String(h[VOUCH_TRAILER]))).toBe(true);
      // gRPC does not use it, and a value that changes every second is work and bytes per bind.
      expect(h['date']).toBeUndefined();
    }
  });

  it('carries the new key and a voucher it signed once the key ring has rotated', async () => {
    const { balancer, address, session } = await setUp();
    const before = await bind(session, 'client-0001');
    balancer.voucher.rotate();
    const after = await bind(session, 'client-0002');
    expect(after[BALANCER_KEY_TRAILER]).not.toBe(before[BALANCER_KEY_TRAILER]);
    expect(after[BALANCER_KEY_TRAILER]).toBe(balancer.voucher.publicKey);
    expect(String(after[BALANCER_KEYS_TRAILER]).split(',')).toHaveLength(2);
    expect(checkVoucher(balancerKey(String(after[BALANCER_KEY_TRAILER])), 'echo', address, String(after[VOUCH_TRAILER]))).toBe(true);
    expect(checkVoucher(balancerKey(String(before[BALANCER_KEY_TRAILER])), 'echo', address, String(after[VOUCH_TRAILER]))).not.toBe(true);
  });
});
