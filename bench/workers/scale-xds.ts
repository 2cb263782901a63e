/**
 * xDS clients for the scale benchmark's memory points: raw ADS streams on
 * the balancer's control port, each one simulated proxyless client (its own
 * node id) asking for the group's listener, cluster and endpoints, as a
 * gRPC xDS client does. Its EDS answer is its binding. The streams are
 * spread over a few channels (STREAMS_PER_CHANNEL each) and held open.
 *   open n      opens n more streams; resolves once each has its EDS answer
 *   stats       streams open, EDS answers, this process's CPU (µs, cumulative)
 */
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { randomBytes } from 'node:crypto';
import { xdsProtoDirs } from '../../src/balancer/xds/protos';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL } from '../../src/balancer/xds/resources';
import { fatal, flag, send, serve } from './worker-util';

const balancer = flag('balancer');
const group = flag('group', 'scale');
/** ADS streams per channel (one TCP connection each). */
const STREAMS_PER_CHANNEL = 100;
/** Streams opened at once while ramping up. */
const OPEN_BATCH = 200;

const definition = loadSync(['envoy/service/discovery/v3/ads.proto'], { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, json: true, includeDirs: xdsProtoDirs() });
const Ads = (grpc.loadPackageDefinition(definition) as unknown as { envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: grpc.ServiceClientConstructor } } } } }).envoy.service.discovery.v3.AggregatedDiscoveryService;
type AdsCall = grpc.ClientDuplexStream<Record<string, unknown>, { type_url: string; nonce: string; version_info: string }>;

const prefix = randomBytes(4).toString('hex');
const channels: grpc.Client[] = [];
const calls: AdsCall[] = [];
let edsAnswers = 0;

function openOne(index: number): Promise<void> {
  if (index % STREAMS_PER_CHANNEL === 0) channels.push(new Ads(balancer, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
  const client = channels[Math.floor(index / STREAMS_PER_CHANNEL)]!;
  const call = (client as unknown as { StreamAggregatedResources(): AdsCall }).StreamAggregatedResources();
  calls.push(call);
  const node = { id: `bench-xds-${prefix}-${index}` };
  return new Promise((resolve, reject) => {
    call.on('data', (r) => {
      // ACK each answer, as a client does.
      call.write({ type_url: r.type_url, resource_names: [group], response_nonce: r.nonce, version_info: r.version_info });
      if (r.type_url === ENDPOINT_TYPE_URL) {
        edsAnswers++;
        resolve();
      }
    });
    call.on('error', (err: grpc.ServiceError) => reject(new Error(`xDS stream ${index}: ${err.details}`)));
    call.write({ node, type_url: LISTENER_TYPE_URL, resource_names: [group] });
    call.write({ type_url: CLUSTER_TYPE_URL, resource_names: [group] });
    call.write({ type_url: ENDPOINT_TYPE_URL, resource_names: [group] });
  });
}

serve(async (m) => {
  if (m.type === 'open') {
    const n = Number(m['n']);
    const start = calls.length;
    for (let i = 0; i < n; i += OPEN_BATCH) await Promise.all(Array.from({ length: Math.min(OPEN_BATCH, n - i) }, (_, k) => openOne(start + i + k)));
    return { open: calls.length, eds: edsAnswers };
  }
  if (m.type === 'stats') {
    const cpu = process.cpuUsage();
    return { open: calls.length, eds: edsAnswers, cpu_us: cpu.user + cpu.system };
  }
  throw new Error(`unknown request ${m.type}`);
});
send({ type: 'ready' });
process.on('uncaughtException', fatal);
