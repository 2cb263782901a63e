/**
 * The admin HTTP port as an attacker would try it, over real sockets on
 * loopback: DNS rebinding (a foreign Host header with a matching Origin),
 * changes without a token, a malformed percent-escape in the group path, and
 * dashboard viewers that never read their event stream.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Balancer } from '../../src/index';
import { MAX_VIEWER_BLOCKED_MS, MAX_VIEWER_BUFFER_BYTES } from '../../src/balancer/admin-http';
import { parseBalancerConfig } from '../../src/balancer/config';
import { sleep, startBalancer, waitFor } from '../support/cluster';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

const TOKEN = 'admin-token-0123456789';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(address: string, path: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const at = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = http.request({ host: address.slice(0, at), port: Number(address.slice(at + 1)), path, method: options.method ?? 'GET', headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

function post(address: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  return request(address, path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

/** Sends `raw` on a fresh connection and returns everything the server answers. */
function rawExchange(address: string, raw: string): Promise<string> {
  const at = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(address.slice(at + 1)), address.slice(0, at));
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('utf8')));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
    socket.write(raw);
  });
}

async function start(extra: Record<string, unknown> = {}): Promise<Balancer> {
  const balancer = await startBalancer([{ name: 'echo', strategy: 'minimum_dispersion' }], { dashboardPushIntervalMs: 100, ...extra });
  cleanups.push(() => balancer.stop());
  return balancer;
}

const portOf = (address: string) => Number(address.slice(address.lastIndexOf(':') + 1));
const strategyOf = (balancer: Balancer) => balancer.registry.groups.get('echo')!.strategyName;

describe('admin port: Host check (DNS rebinding)', () => {
  it('refuses reads and changes addressed to a foreign host, even with a matching Origin, and changes nothing', async () => {
    const balancer = await start();
    const port = portOf(balancer.adminAddress);
    const foreign = `evil.example:${port}`;

    const read = await request(balancer.adminAddress, '/api/state', { headers: { host: foreign } });
    expect(read.status).toBe(421);
    const error = JSON.parse(read.body).error as string;
    expect(error).toContain(`"${foreign}"`);
    expect(error).toContain('security.adminHosts');

    const change = await post(balancer.adminAddress, '/api/groups/echo/strategy', { strategy: 'p2c' }, { host: foreign, origin: `http://${foreign}` });
    expect(change.status).toBe(421);
    expect(strategyOf(balancer)).toBe('minimum_dispersion');
    for (const path of ['/metrics', '/healthz', '/', '/api/events']) {
      expect((await request(balancer.adminAddress, path, { headers: { host: foreign } })).status, path).toBe(421);
    }
    expect(balancer.refusals.get('admin_http_bad_host')).toBe(6);

    // The names the port is really reached by are served.
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`]) {
      expect((await request(balancer.adminAddress, '/healthz', { headers: { host } })).status, host).toBe(200);
    }
    // HTTP/1.0 may leave the Host out: that is a 400, not a pass.
    const noHost = await rawExchange(balancer.adminAddress, 'GET /healthz HTTP/1.0\r\n\r\n');
    expect(noHost).toMatch(/^HTTP\/1\.1 400 /);
    expect(noHost).toContain('Host header');
    expect(balancer.refusals.get('admin_http_bad_host')).toBe(7);
  });

  it('serves the extra names of security.adminHosts (a bare name on any port, host:port exactly)', async () => {
    const balancer = await start({ security: { adminToken: TOKEN, adminHosts: ['dash.example', 'proxy.example:8443'] } });
    const port = portOf(balancer.adminAddress);
    for (const host of ['dash.example', `dash.example:${port}`, 'proxy.example:8443']) {
      expect((await request(balancer.adminAddress, '/healthz', { headers: { host } })).status, host).toBe(200);
    }
    for (const host of ['proxy.example', `proxy.example:${port}`, 'other.example']) {
      expect((await request(balancer.adminAddress, '/healthz', { headers: { host } })).status, host).toBe(421);
    }
    // A change through an allowed name, from the page served under that name.
    const ok = await post(balancer.adminAddress, '/api/groups/echo/strategy', { strategy: 'p2c' }, { host: 'dash.example', origin: 'https://dash.example', authorization: `Bearer ${TOKEN}` });
    expect(ok.status).toBe(200);
    expect(strategyOf(balancer)).toBe('p2c');
  });
});

describe('admin port: who may change things', () => {
  it('refuses changes when no token is set and the operator did not opt in', async () => {
    const balancer = await start();
    const answer = await post(balancer.adminAddress, '/api/groups/echo/strategy', { strategy: 'p2c' });
    expect(answer.status).toBe(403);
    const error = JSON.parse(answer.body).error as string;
    expect(error).toContain('security.adminToken');
    expect(error).toContain('security.adminUnauthenticatedChanges');
    expect((await post(balancer.adminAddress, '/api/groups/echo/granularity', { granularity: 'per-request' })).status).toBe(403);
    expect(strategyOf(balancer)).toBe('minimum_dispersion');
    expect(balancer.registry.groups.get('echo')!.granularity).toBe('on-demand');
    expect(balancer.refusals.get('admin_http_changes_disabled')).toBe(2);
    // Reads stay open, and the page is told changes are off.
    const state = JSON.parse((await request(balancer.adminAddress, '/api/state')).body);
    expect(state.changes).toBe('disabled');
  });

  it('with the loopback opt-in, changes work without a token', async () => {
    const balancer = await start({ security: { adminUnauthenticatedChanges: true } });
    const answer = await post(balancer.adminAddress, '/api/groups/echo/strategy', { strategy: 'p2c' });
    expect(answer.status).toBe(200);
    expect(strategyOf(balancer)).toBe('p2c');
    expect(JSON.parse((await request(balancer.adminAddress, '/api/state')).body).changes).toBe('open');
  });

  it('refuses to start with the opt-in on an admin port that is not loopback-only, even when adminListen is overridden after validation', async () => {
    const parsed = parseBalancerConfig({ listen: '127.0.0.1:0', controlListen: '127.0.0.1:0', adminListen: '127.0.0.1:0', security: { adminUnauthenticatedChanges: true } });
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    // As `rebind balancer --admin-listen 0.0.0.0:0` does.
    const config = { ...parsed.value, adminListen: '0.0.0.0:0' };
    await expect(Balancer.start({ config })).rejects.toThrow(/security\.adminUnauthenticatedChanges.*adminListen/);
  });

  it('refuses a change from another origin, or from an opaque ("null") one, even with the token', async () => {
    const balancer = await start({ security: { adminToken: TOKEN } });
    const port = portOf(balancer.adminAddress);
    const auth = { authorization: `Bearer ${TOKEN}` };
    for (const origin of ['null', 'http://evil.example', `http://evil.example:${port}`]) {
      const answer = await post(balancer.adminAddress, '/api/groups/echo/strategy', { strategy: 'p2c' }, { ...auth, origin });
      expect(answer.status, origin).toBe(403);
      expect(JSON.parse(answer.body).error, origin).toContain('cross-origin');
    }
    expect(strategyOf(balancer)).toBe('minimum_dispersion');
    expect(balancer.refusals.get('admin_http_cross_origin')).toBe(3);
    // The page's own origin, under any of the port's names, is fine.
    const ok = await post(balancer.adminAddress, '/api/groups/echo/strategy', { strategy: 'p2c' }, { ...auth, origin: `http://localhost:${port}`, host: `localhost:${port}` });
    expect(ok.status).toBe(200);
  });
});

describe('admin port: malformed group path', () => {
  it('answers a bad percent-escape with 400 after the auth check, never 500, and logs no error', async () => {
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const balancer = await Balancer.start({
      config: { listen: '127.0.0.1:0', controlListen: '127.0.0.1:0', adminListen: '127.0.0.1:0', groups: [{ name: 'echo' }], security: { adminToken: TOKEN } },
      logger,
    });
    cleanups.push(() => balancer.stop());
    const path = '/api/groups/%E0%A4%A/strategy';
    // Without the token: refused for that, before the path is looked at.
    const anonymous = await post(balancer.adminAddress, path, { strategy: 'p2c' });
    expect(anonymous.status).toBe(401);
    const bad = await post(balancer.adminAddress, path, { strategy: 'p2c' }, { authorization: `Bearer ${TOKEN}` });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error).toContain('percent-escape');
    expect(balancer.refusals.get('admin_http_bad_path')).toBe(1);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    // And the port still serves.
    expect((await request(balancer.adminAddress, '/healthz')).status).toBe(200);
  });
});

describe('admin port: dashboard viewers that never read', () => {
  interface ViewerView {
    res: http.ServerResponse;
    blocked: boolean;
  }
  /** The admin port's live viewers (private state, looked at to measure what a stuck viewer costs). */
  const viewersOf = (balancer: Balancer) => [...((balancer as unknown as { adminHttp: { viewers: Set<ViewerView> } }).adminHttp.viewers)];

  /** A raw connection that asks for the event stream and never reads a byte. */
  function stuckViewer(address: string): Promise<{ socket: net.Socket; closed: Promise<void> }> {
    const at = address.lastIndexOf(':');
    return new Promise((resolve, reject) => {
      const socket = net.connect(Number(address.slice(at + 1)), address.slice(0, at), () => {
        socket.pause();
        socket.write(`GET /api/events HTTP/1.1\r\nHost: ${address}\r\nAccept: text/event-stream\r\n\r\n`);
        resolve({ socket, closed: new Promise((done) => socket.once('close', () => done())) });
      });
      socket.on('error', () => undefined);
      socket.once('error', reject);
    });
  }

  /** The connection was closed by the balancer: reading what it holds ends in 'close' (a paused socket never sees the end). */
  async function closedOnceRead(stuck: { socket: net.Socket; closed: Promise<void> }): Promise<void> {
    stuck.socket.resume();
    await Promise.race([stuck.closed, sleep(10_000).then(() => Promise.reject(new Error('the connection was not closed by the balancer within 10 s')))]);
  }

  it('stops writing to a blocked viewer, keeps at most one drain listener, and closes it once blocked too long', async () => {
    const balancer = await start();
    // A healthy viewer that reads, to show it is not the one dropped.
    let healthyFrames = 0;
    const at = balancer.adminAddress.lastIndexOf(':');
    const healthy = http.get({ host: balancer.adminAddress.slice(0, at), port: portOf(balancer.adminAddress), path: '/api/events' }, (res) => res.on('data', () => healthyFrames++));
    healthy.on('error', () => undefined);
    cleanups.push(() => void healthy.destroy());
    const stuck = await stuckViewer(balancer.adminAddress);
    cleanups.push(() => void stuck.socket.destroy());
    await waitFor(() => viewersOf(balancer).length === 2 && healthyFrames > 0, 5000, 10, 'two viewers');
    const stuckViewerEntry = viewersOf(balancer).find((v) => v.res.socket?.remotePort === stuck.socket.localPort);
    // The balancer's viewer for the raw socket is found by its port (not the healthy one).
    expect(stuckViewerEntry?.res.socket?.remotePort).toBe(stuck.socket.localPort);
    const stuckRes = stuckViewerEntry!.res;

    // 32 MB of decisions: far more than the loopback socket buffers hold.
    const text = 'x'.repeat(1000);
    let maxDrainListeners = 0;
    let maxBufferedBytes = 0;
    for (let batch = 0; batch < 64; batch++) {
      for (let i = 0; i < 500; i++) balancer.decisions.record('advisory', 'echo', `${batch}/${i} ${text}`);
      maxDrainListeners = Math.max(maxDrainListeners, stuckRes.listenerCount('drain'));
      maxBufferedBytes = Math.max(maxBufferedBytes, stuckRes.writableLength);
      await new Promise((resolve) => setImmediate(resolve));
    }
    // It did block (one drain listener while it was), and never had more than one.
    expect(maxDrainListeners).toBe(1);
    // What the stuck viewer holds on the balancer stays small, whatever was recorded.
    expect(maxBufferedBytes).toBeLessThan(2 * 1024 * 1024);
    expect(viewersOf(balancer)).toHaveLength(2);

    // The reading viewer catches up (so that only the stuck one is blocked when the clock jumps).
    const healthyView = () => viewersOf(balancer).find((v) => v.res !== stuckRes)!;
    await waitFor(() => !healthyView().blocked && healthyView().res.writableLength === 0, 20_000, 10, 'the healthy viewer drained');
    // Once it has been blocked longer than the bound, it is closed (seen at the next push).
    const realNow = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + MAX_VIEWER_BLOCKED_MS + 1000);
    await waitFor(() => balancer.refusals.get('admin_http_slow_viewer') === 1, 10_000, 10, 'the stuck viewer counted as slow');
    expect(viewersOf(balancer)).toHaveLength(1);
    expect(stuckRes.destroyed).toBe(true);
    await closedOnceRead(stuck);
    // The reading viewer is still served.
    const before = healthyFrames;
    await waitFor(() => healthyFrames > before, 5000, 10, 'more frames for the healthy viewer');
    expect(viewersOf(balancer)[0]!.res).not.toBe(stuckRes);
  });

  it('closes a viewer at once when one frame leaves more than MAX_VIEWER_BUFFER_BYTES buffered', async () => {
    const balancer = await start();
    const stuck = await stuckViewer(balancer.adminAddress);
    cleanups.push(() => void stuck.socket.destroy());
    await waitFor(() => viewersOf(balancer).length === 1, 5000, 10, 'the viewer');
    balancer.decisions.record('advisory', 'echo', 'y'.repeat(MAX_VIEWER_BUFFER_BYTES + 1024 * 1024));
    await waitFor(() => balancer.refusals.get('admin_http_slow_viewer') === 1, 10_000, 10, 'the viewer counted as slow');
    expect(viewersOf(balancer)).toHaveLength(0);
    await closedOnceRead(stuck);
  });
});
