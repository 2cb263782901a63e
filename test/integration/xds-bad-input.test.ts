/**
 * The xDS server (issue 13) against hostile or broken clients: raw ADS
 * streams over real sockets, each answered with the right status and
 * counted; a NACK is recorded and not answered with the same content again.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { isLoopbackPeer } from '../../src/common/address';
import { ENDPOINT_TYPE_URL, LISTENER_TYPE_URL } from '../../src/balancer/xds/resources';
import { xdsClientId } from '../../src/balancer/xds/ads';
import { xdsProtoDirs } from '../../src/balancer/xds/protos';
import { loadSync } from '@grpc/proto-loader';
import type { Balancer } from '../../src/index';
import { sleep, startBalancer, startReplica, stopReplica, waitFor } from '../support/cluster';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

const definition = loadSync(['envoy/service/discovery/v3/ads.proto'], { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, json: true, includeDirs: xdsProtoDirs() });
const lrsDefinition = loadSync(['envoy/service/load_stats/v3/lrs.proto'], { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, json: true, includeDirs: xdsProtoDirs() });
const Lrs = (grpc.loadPackageDefinition(lrsDefinition) as unknown as { envoy: { service: { load_stats: { v3: { LoadReportingService: grpc.ServiceClientConstructor } } } } }).envoy.service.load_stats.v3.LoadReportingService;
const Ads = (grpc.loadPackageDefinition(definition) as unknown as { envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: grpc.ServiceClientConstructor } } } } }).envoy.service.discovery.v3.AggregatedDiscoveryService;

interface Response {
  version_info: string;
  nonce: string;
  type_url: string;
  resources: Record<string, unknown>[];
}

/** One raw ADS stream: what it received, and how it ended. */
function adsStream(balancer: Balancer): { call: grpc.ClientDuplexStream<Record<string, unknown>, Response>; responses: Response[]; ended: Promise<grpc.ServiceError | null> } {
  const client = new Ads(balancer.controlAddress, grpc.credentials.createInsecure());
  cleanups.push(() => client.close());
  const call = (client as unknown as { StreamAggregatedResources(): grpc.ClientDuplexStream<Record<string, unknown>, Response> }).StreamAggregatedResources();
  const responses: Response[] = [];
  call.on('data', (r: Response) => responses.push(r));
  const ended = new Promise<grpc.ServiceError | null>((resolve) => {
    call.on('error', (e: grpc.ServiceError) => resolve(e));
    call.on('end', () => resolve(null));
  });
  cleanups.push(() => call.cancel());
  return { call, responses, ended };
}

async function xdsBalancer(xds: Record<string, unknown> = {}): Promise<Balancer> {
  const balancer = await startBalancer([{ name: 'echo', granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: 250 }], { xds });
  cleanups.push(() => balancer.stop());
  return balancer;
}

describe('xDS: bad input is refused, counted, and leaves the server running', () => {
  it.each([
    ['no node id', {}, /node\.id/],
    ['an oversized node id', { node: { id: 'x'.repeat(300) } }, /300 characters/],
    ['a node id with spaces', { node: { id: 'a b' } }, /printable ASCII/],
  ])('%s: INVALID_ARGUMENT, counted as xds_bad_node', async (_what, request, message) => {
    const balancer = await xdsBalancer();
    const { call, ended } = adsStream(balancer);
    call.write({ ...request, type_url: LISTENER_TYPE_URL, resource_names: ['echo'] });
    const error = await ended;
    expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error?.details).toMatch(message);
    expect(balancer.refusals.get('xds_bad_node')).toBe(1);
  });

  it('too many resource names: RESOURCE_EXHAUSTED naming the limit, counted', async () => {
    const balancer = await xdsBalancer({ maxNamesPerType: 4 });
    const { call, ended } = adsStream(balancer);
    call.write({ node: { id: 'flooder' }, type_url: LISTENER_TYPE_URL, resource_names: ['a', 'b', 'c', 'd', 'e'] });
    const error = await ended;
    expect(error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(error?.details).toContain('at most 4 resources');
    expect(balancer.refusals.get('xds_too_many_names')).toBe(1);
  });

  it('streams beyond xds.maxStreams: RESOURCE_EXHAUSTED, counted; the first stream is served', async () => {
    const balancer = await xdsBalancer({ maxStreams: 1 });
    const first = adsStream(balancer);
    first.call.write({ node: { id: 'one' }, type_url: LISTENER_TYPE_URL, resource_names: ['echo'] });
    await waitFor(() => first.responses.length === 1, 5000);
    const second = adsStream(balancer);
    second.call.write({ node: { id: 'two' }, type_url: LISTENER_TYPE_URL, resource_names: ['echo'] });
    expect((await second.ended)?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(balancer.refusals.get('xds_stream_limit')).toBe(1);
    expect(first.responses[0]!.resources).toHaveLength(1);
    expect(await balancer.metrics.getSingleMetricAsString('rebind_xds_streams')).toMatch(/^rebind_xds_streams 1$/m);
  });

  it('a NACK is counted and its content is not sent again; an ACK gets nothing new', async () => {
    const balancer = await xdsBalancer();
    const r = await startReplica(balancer, 'A');
    cleanups.push(() => stopReplica(r));
    const { call, responses } = adsStream(balancer);
    call.write({ node: { id: 'nacker' }, type_url: ENDPOINT_TYPE_URL, resource_names: ['echo'] });
    await waitFor(() => responses.length === 1, 5000);
    const first = responses[0]!;
    expect(first.resources).toHaveLength(1);
    call.write({ type_url: ENDPOINT_TYPE_URL, resource_names: ['echo'], response_nonce: first.nonce, version_info: '', error_detail: { code: 3, message: 'I do not like it' } });
    call.write({ type_url: ENDPOINT_TYPE_URL, resource_names: ['echo'], response_nonce: first.nonce, version_info: '', error_detail: { code: 3, message: 'I do not like it' } });
    await sleep(500);
    expect(responses).toHaveLength(1);
    expect(balancer.refusals.get('xds_nack')).toBe(2);
    expect(balancer.xds!.nacks).toBe(2);
  });

  it('LRS: a report without a node id is refused; a valid one sets the interval and its loads reach the member, other localities ignored', async () => {
    const balancer = await xdsBalancer();
    const r = await startReplica(balancer, 'A');
    cleanups.push(() => stopReplica(r));
    const group = balancer.registry.groups.get('echo')!;
    const member = [...group.members.values()][0]!;
    const client = new Lrs(balancer.controlAddress, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const open = () => (client as unknown as { StreamLoadStats(): grpc.ClientDuplexStream<Record<string, unknown>, Record<string, unknown>> }).StreamLoadStats();
    const bad = open();
    const badEnd = new Promise<grpc.ServiceError>((resolve) => bad.on('error', resolve));
    bad.on('data', () => undefined);
    bad.write({ cluster_stats: [] });
    expect((await badEnd).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(balancer.refusals.get('xds_bad_node')).toBe(1);
    const good = open();
    cleanups.push(() => good.cancel());
    const answers: Record<string, unknown>[] = [];
    good.on('data', (m: Record<string, unknown>) => answers.push(m));
    good.on('error', () => undefined);
    good.write({
      node: { id: 'reporter' },
      cluster_stats: [
        {
          cluster_name: 'echo',
          load_report_interval: { seconds: 2, nanos: 0 },
          upstream_locality_stats: [
            { locality: { region: 'rebind', zone: 'echo', sub_zone: member.id }, total_issued_requests: '100' },
            { locality: { region: 'other', zone: 'x', sub_zone: member.id }, total_issued_requests: '999' },
            { locality: { region: 'rebind', zone: 'echo', sub_zone: 'no-such-member' }, total_issued_requests: '999' },
          ],
        },
        { cluster_name: 'no-such-group', load_report_interval: { seconds: 1 }, upstream_locality_stats: [] },
      ],
    });
    await waitFor(() => answers.length === 1 && member.clients.size === 1, 5000);
    expect(answers[0]).toMatchObject({ send_all_clusters: true, load_reporting_interval: { seconds: '0', nanos: 250_000_000 } });
    // 100 calls in 2 s: 50 calls/s, the client's load on A (calls_per_s metric).
    expect([...member.clients]).toEqual([[xdsClientId('reporter'), { load: 50, sets: true, lrsAtMs: expect.any(Number) }]]);
  });

  it('knows a loopback peer in every grpc-js spelling', () => {
    expect(['127.0.0.1:5000', 'ipv4:127.0.0.1:5000', '[::1]:5000', 'ipv6:[::1]:5000', 'unix:/tmp/s'].map(isLoopbackPeer)).toEqual([true, true, true, true, true]);
    expect(['10.0.0.1:5000', 'ipv4:192.168.1.1:5000', '[2001:db8::1]:5000'].map(isLoopbackPeer)).toEqual([false, false, false]);
  });
});
