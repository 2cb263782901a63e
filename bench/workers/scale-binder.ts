/**
 * Bind load for the scale benchmark: new rebind-aware clients calling the
 * balancer's data port for the first time, each answered with a forward.
 * Speaks HTTP/2 directly (several connections, many streams) so that the
 * load generator costs less than what it measures.
 *   binds rate durationMs   open loop at `rate` binds/s; replies with the
 *                           binds completed, failures and an HDR histogram
 */
import * as http2 from 'node:http2';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { encodeHistogram, histogram } from '../lib/common';
import { fatal, flag, send, serve } from './worker-util';

const target = flag('target');
const path = flag('path', '/scale.Service/Call');
const CONNECTIONS = 4;

function connect(): http2.ClientHttp2Session {
  const session = http2.connect(`http://${target}`);
  session.on('error', () => undefined);
  return session;
}

const sessions = Array.from({ length: CONNECTIONS }, connect);
const prefix = randomBytes(4).toString('hex');
let counter = 0;
const EMPTY_MESSAGE = Buffer.from([0, 0, 0, 0, 0]);

function bindOnce(): Promise<boolean> {
  const slot = counter % CONNECTIONS;
  if (sessions[slot]!.destroyed || sessions[slot]!.closed) sessions[slot] = connect();
  const session = sessions[slot]!;
  const clientId = `${prefix}${(counter++).toString(36).padStart(8, '0')}`;
  return new Promise((resolve) => {
    const stream = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': `grpc-node-js/1.14 rebind/1 rebind-cid/${clientId}`,
    });
    // A Trailers-Only answer ends the stream; like a gRPC client, never reset it (a flood of
    // RST_STREAMs is what HTTP/2 servers cut off as a rapid-reset attack).
    stream.on('response', (headers) => resolve(headers['grpc-status'] === '10' && typeof headers['rebind-forward'] === 'string'));
    stream.resume();
    stream.on('error', () => resolve(false));
    stream.end(EMPTY_MESSAGE);
  });
}

serve(async (m) => {
  if (m.type !== 'binds') throw new Error(`unknown request ${m.type}`);
  const rate = Number(m['rate']);
  const durationMs = Number(m['durationMs']);
  const h = histogram();
  let ok = 0;
  let failed = 0;
  const period = 1000 / rate;
  const begin = performance.now();
  let sent = 0;
  const inFlight = new Set<Promise<void>>();
  while (performance.now() - begin < durationMs) {
    const due = Math.min(Math.floor((performance.now() - begin) / period) + 1, Math.floor(durationMs / period));
    while (sent < due) {
      sent++;
      const t0 = performance.now();
      const p = bindOnce().then((good) => {
        if (good) {
          ok++;
          h.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
        } else {
          failed++;
        }
      });
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(5, begin + sent * period - performance.now()))));
  }
  const sendingMs = performance.now() - begin;
  await Promise.all([...inFlight]);
  const elapsedMs = performance.now() - begin;
  return { sent, ok, failed, sendingMs, elapsedMs, histogram: encodeHistogram(h) };
});
send({ type: 'ready' });
process.on('uncaughtException', fatal);
