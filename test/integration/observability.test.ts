/**
 * The operator's view over real sockets: the Prometheus endpoint scraped
 * during a scenario (its counters match what the clients saw), the
 * dashboard's JSON state and event stream, and its change controls with
 * their authentication and input checks.
 */
import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { Balancer, clientOptions } from '../../src/index';
import { clientEvents } from '../../src/interceptors/client-policy';
import { controlProto } from '../../src/common/proto';
import type { ControlClient } from '../../src/generated/rebind/v1/Control';
import { logFormat } from '../../src/common/logger';
import { echoClient, sleep, startBalancer, startReplica, stopReplica, unary, waitFor } from '../support/cluster';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(address: string, path: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path, method: options.method ?? 'GET', headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Parses the Prometheus text format into "name{labels}" -> value (labels sorted as printed). */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

async function scrape(balancer: Balancer): Promise<Map<string, number>> {
  const answer = await request(balancer.adminAddress, '/metrics');
  expect(answer.status).toBe(200);
  expect(answer.headers['content-type']).toContain('text/plain');
  return parseMetrics(answer.body);
}

describe('Prometheus metrics', () => {
  it('counts what the clients saw: forwards by the balancer and by replicas, moves, members, loads, refusals, reconnects', async () => {
    const intervalMs = 250;
    const balancer = await startBalancer([{ name: 'echo', granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: intervalMs, dampening: 0.5 }]);
    cleanups.push(() => balancer.stop());
    // What the clients saw, from the rebind policy's own events.
    const seen = { fromBalancer: 0, fromReplicas: 0 };
    const listener = {
      forwarded: (from: string) => (from === balancer.address ? seen.fromBalancer++ : seen.fromReplicas++),
      unbound: (_from: string, reason: string) => reason.startsWith('forwarded back') && seen.fromReplicas++,
    };
    clientEvents.add(listener);
    cleanups.push(() => void clientEvents.delete(listener));

    const a = await startReplica(balancer, 'A');
    cleanups.push(() => stopReplica(a));
    const stubs = [0, 1, 2, 3].map(() => echoClient(balancer.address, clientOptions()));
    cleanups.push(() => stubs.forEach((s) => s.close()));
    const lastServedBy = ['', '', '', ''];
    let running = true;
    const loops = stubs.map(async (stub, i) => {
      while (running) {
        lastServedBy[i] = (await unary(stub, { text: `c${i}` }).catch(() => ({ servedBy: 'failed' }))).servedBy;
        await sleep(20);
      }
    });
    cleanups.push(async () => {
      running = false;
      await Promise.all(loops);
    });
    await waitFor(() => lastServedBy.every((s) => s === 'A'), 5000, 10, 'all clients on A');
    await sleep(2 * intervalMs);
    const b = await startReplica(balancer, 'B');
    cleanups.push(() => stopReplica(b));
    await waitFor(() => lastServedBy.filter((s) => s === 'B').length === 2, 20_000, 5, 'two clients moved to B');

    // Replica forwards, and the moved clients' load, reach the balancer with the next load reports.
    const group = balancer.registry.groups.get('echo')!;
    const settled = (m: Map<string, number>) =>
      m.get('rebind_forwards_total{group="echo",by="replica"}') === seen.fromReplicas &&
      [...group.members.values()].every((member) => {
        // Planned moves count on the target at once; its load shows once it has reported the calls.
        const labels = `{group="echo",member="${member.id}",address="${member.address}"}`;
        return m.get(`rebind_member_clients${labels}`) === 2 && m.get(`rebind_member_load${labels}`)! > 0;
      });
    let metrics = await scrape(balancer);
    let deadline = Date.now() + 10_000;
    while (!settled(metrics) && Date.now() < deadline) {
      await sleep(intervalMs);
      metrics = await scrape(balancer);
    }
    // Operators see the plan that moved them and the bindings it made.
    const shown = JSON.parse((await request(balancer.adminAddress, '/api/state')).body).groups[0];
    expect(shown.lastPlan.moveCount).toBeGreaterThanOrEqual(1);
    expect(shown.lastPlan.dispersionAfter).toBeLessThan(shown.lastPlan.dispersionBefore);
    expect(shown.bindingCount).toBe(4);
    expect(shown.bindings.filter((b: { via: string }) => b.via === 'plan').length).toBeGreaterThanOrEqual(2);
    // (A plan may spread a client over members: count every size.)
    expect(Array.from({ length: 16 }, (_, i) => metrics.get(`rebind_bindings{group="echo",size="${i + 1}"}`)!).reduce((a, b) => a + b, 0)).toBe(4);
    expect(metrics.get('rebind_plan_moves{group="echo"}')).toBeGreaterThanOrEqual(1);
    // The live picture: who is in, how loaded, how many clients each.
    expect(metrics.get('rebind_group_info{group="echo",strategy="minimum_dispersion",granularity="on-demand",metric="calls_per_s"}')).toBe(1);
    const states = ['ATTACHED', 'NOMINAL', 'SHEDDING', 'DRAINING', 'SUSPECT'];
    expect(states.reduce((n, state) => n + metrics.get(`rebind_group_members{group="echo",state="${state}"}`)!, 0)).toBe(2);
    for (const m of group.members.values()) expect(metrics.get(`rebind_group_members{group="echo",state="${m.state}"}`)).toBeGreaterThanOrEqual(1);
    expect(metrics.get('rebind_control_attaches_total{group="echo"}')).toBe(2);
    for (const m of group.members.values()) {
      const labels = `{group="echo",member="${m.id}",address="${m.address}"}`;
      expect(metrics.get(`rebind_member_load${labels}`)).toBeGreaterThan(0);
      expect(metrics.get(`rebind_member_dampened_load${labels}`)).toBeGreaterThan(0);
      expect(metrics.get(`rebind_member_clients${labels}`)).toBe(2);
    }

    // The counters, once the clients stop and the last replica forwards are reported.
    // (How many moves it takes may vary on a loaded machine, so the counters are
    // compared with what the clients saw rather than with fixed numbers.)
    running = false;
    await Promise.all(loops);
    deadline = Date.now() + 10_000;
    while (metrics.get('rebind_forwards_total{group="echo",by="replica"}') !== seen.fromReplicas && Date.now() < deadline) {
      await sleep(intervalMs);
      metrics = await scrape(balancer);
    }
    expect(seen.fromBalancer).toBe(4); // each client bound once by the balancer
    expect(seen.fromReplicas).toBeGreaterThanOrEqual(2); // at least the two moves to B
    expect(metrics.get('rebind_forwards_total{group="echo",by="balancer"}')).toBe(seen.fromBalancer);
    expect(metrics.get('rebind_binds_total{group="echo"}')).toBe(seen.fromBalancer);
    expect(metrics.get('rebind_forwards_total{group="echo",by="replica"}')).toBe(seen.fromReplicas);
    expect(metrics.get('rebind_moves_total{group="echo"}')).toBeGreaterThanOrEqual(2);
    expect(metrics.get('rebind_rebinds_total{group="echo",via="advisory"}')).toBe(metrics.get('rebind_moves_total{group="echo"}'));
    expect(metrics.get('rebind_rebinds_total{group="echo",via="balancer"}')).toBe(0);
    expect(metrics.get('rebind_advisories_total{group="echo"}')).toBeGreaterThanOrEqual(1);
    expect(metrics.get('process_resident_memory_bytes')).toBeGreaterThan(0);

    // A refused control message and a replica re-attaching show up too.
    const Control = controlProto().rebind.v1.Control;
    const control = new Control(balancer.controlAddress, grpc.credentials.createInsecure()) as unknown as ControlClient;
    cleanups.push(() => control.close());
    const bad = control.attach();
    bad.on('error', () => undefined);
    bad.write({ report: { seq: 1, intervalMs: 100 } });
    const hello = { hello: { protocolVersion: 1, group: 'echo', address: '127.0.0.1:6001', methods: [{ path: '/rebind.test.Echo/Unary', kind: 'UNARY' as const }], replicaId: 'again' } };
    for (let i = 0; i < 2; i++) {
      const call = control.attach();
      call.on('error', () => undefined);
      const attached = new Promise((resolve) => call.once('data', resolve));
      call.write(hello);
      await attached;
      call.cancel();
      await waitFor(() => ![...group.members.values()].some((m) => m.address === '127.0.0.1:6001'), 5000, 10, 'the cancelled attachment removed');
    }
    metrics = await scrape(balancer);
    expect(metrics.get('rebind_refused_inputs_total{reason="report_before_hello"}')).toBe(1);
    expect(metrics.get('rebind_control_reconnects_total{group="echo"}')).toBe(1);
  });

  it('limits.maxMemberSeries bounds the per-member series served at /metrics; the left-out members are counted', async () => {
    const balancer = await startBalancer([{ name: 'echo', reportIntervalMs: 100 }], { limits: { maxMemberSeries: 1 } });
    cleanups.push(() => balancer.stop());
    for (const name of ['A', 'B', 'C']) {
      const r = await startReplica(balancer, name);
      cleanups.push(() => stopReplica(r));
    }
    const group = balancer.registry.groups.get('echo')!;
    await waitFor(() => group.members.size === 3, 5000, 10, 'three members');
    const metrics = await scrape(balancer);
    const first = [...group.members.values()][0]!;
    expect([...metrics.keys()].filter((k) => k.startsWith('rebind_member_load{'))).toEqual([`rebind_member_load{group="echo",member="${first.id}",address="${first.address}"}`]);
    expect(metrics.get('rebind_member_series_omitted{group="echo"}')).toBe(2);
  });

  it('a balancer with adminListen null has no admin port', async () => {
    const balancer = await startBalancer([{ name: 'echo' }], { adminListen: null });
    cleanups.push(() => balancer.stop());
    expect(balancer.adminAddress).toBe('');
  });
});

describe('dashboard endpoints', () => {
  async function withReplicas(extra: Record<string, unknown> = {}, token?: string) {
    const balancer = await startBalancer([{ name: 'echo', reportIntervalMs: 100 }], { dashboardPushIntervalMs: 100, ...extra });
    cleanups.push(() => balancer.stop());
    for (const name of ['A', 'B']) {
      const r = await startReplica(balancer, name, 'echo', token === undefined ? {} : { token });
      cleanups.push(() => stopReplica(r));
    }
    return balancer;
  }

  it('serves the page, its assets, the state and a live event stream', async () => {
    const balancer = await withReplicas();
    const page = await request(balancer.adminAddress, '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toContain("default-src 'self'");
    expect(page.body).toContain('<script src="/app.js"');
    for (const asset of ['/app.js', '/style.css', '/vendor/uPlot.iife.min.js', '/vendor/uPlot.min.css']) {
      const answer = await request(balancer.adminAddress, asset);
      expect(answer.status, asset).toBe(200);
      expect(answer.body.length, asset).toBeGreaterThan(100);
    }
    const state = JSON.parse((await request(balancer.adminAddress, '/api/state')).body);
    expect(state).toMatchObject({ address: balancer.address, controlAddress: balancer.controlAddress, authRequired: false, changes: 'disabled', granularities: ['per-session', 'per-request', 'on-demand'] });
    expect(state.strategies).toContain('minimum_dispersion');
    expect(state.groups[0].members).toHaveLength(2);
    expect(state.decisions.filter((d: { kind: string }) => d.kind === 'member-joined')).toHaveLength(2);

    // The event stream: a snapshot at once, more every push interval, decisions as they happen.
    const events: { event: string; data: string }[] = [];
    const [host, port] = balancer.adminAddress.split(':');
    const req = http.get({ host, port: Number(port), path: '/api/events' }, (res) => {
      expect(res.headers['content-type']).toContain('text/event-stream');
      let buffer = '';
      res.on('data', (chunk: Buffer) => {
        buffer += chunk.toString('utf8');
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (event !== undefined && data !== undefined) events.push({ event, data });
        }
      });
    });
    req.on('error', () => undefined);
    cleanups.push(() => void req.destroy());
    await waitFor(() => events.filter((e) => e.event === 'snapshot').length >= 3, 5000, 10, 'three snapshots');
    balancer.admin.setStrategy('echo', 'p2c', '');
    await waitFor(() => events.some((e) => e.event === 'decision' && JSON.parse(e.data).kind === 'strategy'), 5000, 10, 'the strategy decision');
    const lastSnapshot = () => JSON.parse(events.filter((e) => e.event === 'snapshot').at(-1)!.data);
    await waitFor(() => lastSnapshot().groups[0].strategy === 'p2c', 5000, 10, 'a snapshot with the new strategy');
    const last = lastSnapshot();
    expect(last.groups[0].members.map((m: { state: string }) => m.state)).toEqual(['NOMINAL', 'NOMINAL']);
  });

  it('changes strategy and granularity over HTTP, and refuses bad changes with a clear status', async () => {
    // No token: changes need the operator's opt-in, accepted because the admin port is on loopback.
    const balancer = await withReplicas({ security: { adminUnauthenticatedChanges: true } });
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      request(balancer.adminAddress, path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    const ok = await post('/api/groups/echo/strategy', { strategy: 'least_loaded', params: { dampening: 0.2 } });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ strategy: 'least_loaded', params: { dampening: 0.2 } });
    expect(balancer.registry.groups.get('echo')!.strategyName).toBe('least_loaded');
    expect((await post('/api/groups/echo/granularity', { granularity: 'per-request' })).status).toBe(200);
    expect(balancer.registry.groups.get('echo')!.granularity).toBe('per-request');

    const cases: [string, unknown, Record<string, string>, number, string][] = [
      ['/api/groups/ghost/strategy', { strategy: 'p2c' }, {}, 404, 'group "ghost" does not exist'],
      ['/api/groups/echo/strategy', { strategy: 'yolo' }, {}, 400, 'strategy "yolo" is unknown'],
      ['/api/groups/echo/strategy', { strategy: 'p2c', params: { choices: 'many' } }, {}, 400, 'params.'],
      ['/api/groups/echo/strategy', '{not json', {}, 400, 'not valid JSON'],
      ['/api/groups/echo/strategy', [1, 2], {}, 400, 'JSON object'],
      ['/api/groups/echo/granularity', { granularity: 'hourly' }, {}, 400, 'granularity "hourly" is unknown'],
      ['/api/groups/echo/granularity', { granularity: 'on-demand' }, { 'content-type': 'text/plain' }, 415, 'application/json'],
      ['/api/groups/echo/granularity', { granularity: 'on-demand' }, { origin: 'http://evil.example' }, 403, 'cross-origin'],
      ['/api/groups/echo/strategy', 'x'.repeat(70_000), {}, 413, 'larger than'],
    ];
    for (const [path, body, headers, status, fragment] of cases) {
      const answer = await post(path, body, headers);
      expect(answer.status, `${path} ${JSON.stringify(body).slice(0, 60)}`).toBe(status);
      expect(JSON.parse(answer.body).error).toContain(fragment);
    }
    expect((await request(balancer.adminAddress, '/api/groups/echo/strategy')).status).toBe(405);
    expect((await request(balancer.adminAddress, '/nope')).status).toBe(404);
    // Nothing above changed the group, and the balancer still serves.
    expect(balancer.registry.groups.get('echo')!.strategyName).toBe('least_loaded');
    const stub = echoClient(balancer.address, clientOptions());
    cleanups.push(() => stub.close());
    expect((await unary(stub, { text: 'still here' })).text).toBe('still here');
    const metrics = await scrape(balancer);
    expect(metrics.get('rebind_refused_inputs_total{reason="admin_http_content_type"}')).toBe(1);
    expect(metrics.get('rebind_refused_inputs_total{reason="admin_http_cross_origin"}')).toBe(1);
  });

  it('with an admin token, changes need it; reads stay open', async () => {
    const token = 'dashboard-token-0123456789';
    const balancer = await withReplicas({ security: { adminToken: token } });
    const change = (headers: Record<string, string>) =>
      request(balancer.adminAddress, '/api/groups/echo/strategy', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"strategy":"p2c"}' });
    const missing = await change({});
    expect(missing.status).toBe(401);
    expect(missing.headers['www-authenticate']).toContain('Bearer');
    expect(JSON.parse(missing.body).error).toContain('missing admin token');
    expect((await change({ authorization: 'Bearer wrong-token-0123456789' })).status).toBe(401);
    expect(balancer.registry.groups.get('echo')!.strategyName).not.toBe('p2c');
    expect((await change({ authorization: `Bearer ${token}` })).status).toBe(200);
    expect(balancer.registry.groups.get('echo')!.strategyName).toBe('p2c');
    expect(JSON.parse((await request(balancer.adminAddress, '/api/state')).body).authRequired).toBe(true);
    expect((await request(balancer.adminAddress, '/metrics')).status).toBe(200);
  });
});

describe('log format', () => {
  it('is pretty in a terminal and JSON otherwise, unless REBIND_LOG_FORMAT says', () => {
    expect(logFormat({}, true)).toBe('pretty');
    expect(logFormat({}, false)).toBe('json');
    expect(logFormat({ REBIND_LOG_FORMAT: 'json' }, true)).toBe('json');
    expect(logFormat({ REBIND_LOG_FORMAT: 'pretty' }, false)).toBe('pretty');
  });
});
