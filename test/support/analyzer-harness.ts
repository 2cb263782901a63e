/**
 * The analyzer without sockets: a registry and an analyzer on an rxjs
 * VirtualTimeScheduler, members joined through fake advisory sinks that
 * record what they were sent (and when), and load reports built from
 * per-client calls/s.
 */
import { VirtualAction, VirtualTimeScheduler } from 'rxjs';
import pino from 'pino';
import { Analyzer } from '../../src/balancer/analyzer';
import { parseBalancerConfig } from '../../src/balancer/config';
import { Member, type AdvisorySink } from '../../src/balancer/member';
import { Registry } from '../../src/balancer/registry';
import type { Advisory } from '../../src/generated/rebind/v1/Advisory';
import type { LoadReport__Output } from '../../src/generated/rebind/v1/LoadReport';

const log = pino({ level: 'silent' });

/** Records every advisory a member is sent (`advisories`, and `sent` with the virtual time). */
export class FakeSink implements AdvisorySink {
  advisories: Advisory[] = [];
  sent: { atMs: number; advisory: Advisory }[] = [];
  closed: { code: number; details: string } | null = null;
  constructor(private readonly now: () => number = () => 0) {}
  sendAdvisory(advisory: Advisory): boolean {
    if (this.closed) return false;
    this.advisories.push(advisory);
    this.sent.push({ atMs: this.now(), advisory });
    return true;
  }
  close(code: number, details: string): void {
    this.closed = { code, details };
  }
}

/** A load report of `clients` (client id -> calls/s) over a 100 ms interval. */
export function report(seq: number, clients: Record<string, number>): LoadReport__Output {
  const total = Object.values(clients).reduce((a, b) => a + b, 0);
  return {
    seq,
    clientCount: Object.keys(clients).length,
    intervalMs: 100,
    callsPerS: total,
    inFlight: 0,
    latencyMs: 1,
    eventLoopUtilization: 0,
    cpuCores: 0,
    custom: 0,
    hasCustom: false,
    topClients: Object.entries(clients).map(([clientId, callsPerS]) => ({ clientId, callsPerS, sets: false })),
    otherCallsPerS: 0,
    forwards: 0,
    draining: false,
  };
}

/**
 * Group "g" (report interval 100 ms, no evidence floor, `group` over that)
 * on virtual time up to `horizonMs`; the analyzer is started unless
 * `start` is false (to set hooks first).
 */
export function analyzerSetup(group: Record<string, unknown>, horizonMs: number, start = true) {
  // These reports carry few calls (50 calls/s over 100 ms); the evidence floor is tested on its own.
  const parsed = parseBalancerConfig({ groups: [{ name: 'g', reportIntervalMs: 100, planMinCalls: 0, ...group }] });
  if (!parsed.ok) throw new Error(parsed.errors.join());
  const scheduler = new VirtualTimeScheduler(VirtualAction, horizonMs);
  const registry = new Registry(parsed.value, log, () => 0.5);
  const analyzer = new Analyzer(registry, scheduler, log);
  if (start) analyzer.start();
  const join = (address: string) => {
    const sink = new FakeSink(() => scheduler.now());
    const member = registry.attach({ protocolVersion: 1, group: 'g', address, methods: [{ path: '/p.S/M', kind: 'UNARY' }], replicaId: '', resumeSecret: '' }, sink, scheduler.now());
    if (!(member instanceof Member)) throw new Error(member.message);
    return { member, sink };
  };
  return { scheduler, registry, analyzer, join, group: registry.groups.get('g')! };
}
