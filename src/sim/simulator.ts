/**
 * A deterministic simulator: virtual time (rxjs VirtualTimeScheduler), no
 * sockets. It drives the balancer's real code — Registry, Group (dampening,
 * strategies), Analyzer — and the replica's real LoadMeter and ForwardTable,
 * with simulated replicas (report loops) and open-loop clients (calls on a
 * fixed schedule). Same seed, same result.
 */
import { Subscription, VirtualAction, VirtualTimeScheduler } from 'rxjs';
import pino from 'pino';
import { Analyzer } from '../balancer/analyzer';
import { parseBalancerConfig } from '../balancer/config';
import type { Group } from '../balancer/group';
import { Member, type AdvisorySink } from '../balancer/member';
import { Registry } from '../balancer/registry';
import { FORWARD_TO_BALANCER } from '../common/wire';
import type { Advisory } from '../generated/rebind/v1/Advisory';
import { sanitizeAdvisory } from '../replica/advisory';
import { ForwardTable, isPiggyBack } from '../replica/forward-table';
import { parseBinding } from '../common/wire';
import { pickOfTwo, smoothNext } from '../common/smooth-wrr';
import { DEFAULT_STALL_FACTOR, DEFAULT_STALL_IN_FLIGHT_FLOOR, InFlightBaseline, stallLimit } from '../interceptors/client-policy';

/** The stall bound of clientOptions() clients with the default options. */
const STALL_DEFAULTS = { stallInFlight: null, stallInFlightFloor: DEFAULT_STALL_IN_FLIGHT_FLOOR, stallFactor: DEFAULT_STALL_FACTOR };
import { LoadMeter } from '../replica/load-meter';
import { convergenceSeconds, round, steadyState, type SeriesRow } from './quality';
import { BASE_SERVICE_RATE_PER_S, percentile, ReplicaQueue } from './queue';
import { seededRandom } from './rng';

const PATH = '/sim.Service/Call';

/** A change of a client's rate (calls/s) or a replica's speed at a virtual time. */
export interface SimRateChange {
  atMs: number;
  rate: number;
}
export interface SimSpeedChange {
  atMs: number;
  speed: number;
}

export interface SimClientSpec {
  /** Calls per second (open loop), from startMs until the first rate change; 0 = idle. */
  rate: number;
  /** When the client starts calling, ms (default 0). */
  startMs?: number;
  /** When it stops, ms (default: never). */
  stopMs?: number;
  /**
   * Rate changes, ascending atMs. At a change the client restarts its
   * schedule at the new rate (same phase), so no call of the old rate is
   * sent after it.
   */
  rateChanges?: SimRateChange[];
  /** "periodic" (default): one call every 1/rate s; "poisson": exponential gaps of mean 1/rate s. */
  arrivals?: 'periodic' | 'poisson';
  /**
   * The client understands weighted bindings, as clients built with
   * clientOptions() do (default true): the planner may spread it over
   * several members, and in a per-request group it calls them directly.
   */
  sets?: boolean;
}

export interface SimReplicaSpec {
  name: string;
  attachMs?: number;
  detachMs?: number;
  /** Relative speed: serves speed × BASE_SERVICE_RATE_PER_S calls/s (default 1). */
  speed?: number;
  /** Speed changes, ascending atMs (a call's service time is fixed when its service starts). */
  speedChanges?: SimSpeedChange[];
}

/** A run-time change, as an operator would make through the admin API. */
export interface SimSwitch {
  atMs: number;
  strategy?: string;
  params?: Record<string, number>;
  granularity?: 'per-session' | 'per-request' | 'on-demand';
}

export interface SimScenario {
  name: string;
  description: string;
  /** Group settings, as in the balancer configuration (name is filled in). */
  group: Record<string, unknown>;
  replicas: SimReplicaSpec[];
  clients: SimClientSpec[];
  /** "round-robin": clients start bound to replicas in turn (the paper's setup); "balancer": first call binds. */
  initialBinding: 'round-robin' | 'balancer';
  durationMs: number;
  /** Ground-truth load sampling period, ms (default 250). */
  sampleMs?: number;
  switches?: SimSwitch[];
  seed?: number;
}

export interface SimResult {
  scenario: string;
  reportIntervalMs: number;
  replicas: string[];
  /** [t_s, rps per replica…] every sampleMs, from calls actually served. */
  series: SeriesRow[];
  /** Changes of a client's binding after its first one. */
  rebinds: number;
  rebindTimesMs: number[];
  advisories: number;
  forwardsAtBalancer: number;
  convergenceS: number | null;
  steady: { max_over_mean: number; cv: number };
  /** Mean load per replica over each report interval, by interval number (1-based). */
  intervalLoads: number[][];
  /**
   * Latency (queue wait + service) of every call a replica accepted, ms,
   * nearest-rank percentiles; calls still queued at the end count with the
   * completion time the queue already fixed for them.
   */
  latency: { calls: number; p50Ms: number; p99Ms: number; maxMs: number };
  /** Highest calls in flight (queued + in service) per replica over the run, in replica order. */
  maxInFlight: number[];
  /** Calls that found no live replica to go to (none attached). */
  unservedCalls: number;
  /** Length of the run, ms. */
  durationMs: number;
  /** One-member bindings given up by their clients (calls piled up past the stall bound). */
  givenUp: number;
  /** Members of each client's binding at the end of the run, in client order. */
  finalBindingSizes: number[];
}

interface SimReplica {
  spec: SimReplicaSpec;
  address: string;
  meter: LoadMeter;
  forwards: ForwardTable;
  member: Member | null;
  seq: number;
  served: number;
  queue: ReplicaQueue;
}

interface SimClient {
  id: string;
  spec: SimClientSpec;
  /** The client's binding: one member, or a weighted set (empty: unbound). */
  binding: { replica: SimReplica; permille: number }[];
  everBound: boolean;
  sets: boolean;
  /** Completion times (ms) of this client's calls in flight, per replica, ascending (each replica serves in order). */
  inFlight: Map<SimReplica, number[]>;
  /** Smooth weighted round robin credits of the binding's members. */
  credits: number[];
  /** The client policy's in-flight baseline (stall bound of a one-member binding). */
  baseline: InFlightBaseline;
}

const silent = pino({ level: 'silent' });

/**
 * rxjs's VirtualAction re-sorts the whole action list on every schedule;
 * with one action per call that was most of a run's CPU. This one inserts
 * in place (binary search) in the same order, (delay, index), so runs are
 * identical, only faster.
 */
class InsertingVirtualAction<T> extends VirtualAction<T> {
  /** The action the caller holds (the first of a rescheduling chain). */
  private root: InsertingVirtualAction<T> | undefined;

  override schedule(state?: T, delay = 0): Subscription {
    if (!Number.isFinite(delay)) return Subscription.EMPTY;
    if (!this.id) return super.schedule(state, delay);
    // As VirtualAction does, but the next action is one of ours, and it
    // hangs off the first action of the chain (unsubscribing that one still
    // cancels it) instead of off this one: a chain one action per call long
    // kept every call's action alive for the whole run.
    this.active = false;
    const action = new InsertingVirtualAction(this.scheduler, this.work);
    action.root = this.root ?? this;
    action.root.remove(this);
    action.root.add(action);
    return action.schedule(state, delay);
  }

  protected override requestAsyncId(scheduler: VirtualTimeScheduler, _id?: unknown, delay = 0): number {
    this.delay = scheduler.frame + delay;
    const actions = scheduler.actions as InsertingVirtualAction<unknown>[];
    let lo = 0;
    let hi = actions.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const a = actions[mid]!;
      if (a.delay < this.delay || (a.delay === this.delay && a.index < this.index)) lo = mid + 1;
      else hi = mid;
    }
    actions.splice(lo, 0, this as InsertingVirtualAction<unknown>);
    return 1;
  }
}

/** Runs one scenario to completion on virtual time. */
export function simulate(scenario: SimScenario): SimResult {
  const random = seededRandom(scenario.seed ?? 1);
  const parsed = parseBalancerConfig({ groups: [{ name: 'sim', ...scenario.group }] });
  if (!parsed.ok) throw new Error(`scenario ${scenario.name}: ${parsed.errors.join('; ')}`);
  const config = parsed.value;
  const interval = config.groups[0]!.reportIntervalMs;
  const sampleMs = scenario.sampleMs ?? 250;
  const scheduler = new VirtualTimeScheduler(InsertingVirtualAction as typeof VirtualAction, scenario.durationMs);
  const now = () => scheduler.now();
  const registry = new Registry(config, silent, random);
  const group: Group = registry.groups.get('sim')!;
  let advisories = 0;
  const analyzer = new Analyzer(registry, scheduler, silent);

  const replicas: SimReplica[] = scenario.replicas.map((spec, i) => ({
    spec,
    // 10.0.0.1 … 10.0.0.250, then 10.0.1.1 …: unique for any number of replicas.
    address: `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}:5000`,
    meter: new LoadMeter(0),
    forwards: new ForwardTable(now),
    member: null,
    seq: 0,
    served: 0,
    queue: new ReplicaQueue((t) => BASE_SERVICE_RATE_PER_S * stepAt(spec.speed ?? 1, spec.speedChanges ?? [], t, (c) => c.speed)),
  }));
  const latencies: number[] = [];
  let unservedCalls = 0;
  /** The call enters the replica's meter and queue; the meter hears of each completion when it is drained. */
  const accept = (r: SimReplica, clientId: string | null, client?: SimClient): void => {
    r.meter.callStarted(clientId, client?.sets ?? false);
    r.served++;
    const latencyMs = r.queue.arrive(now(), (l) => r.meter.callEnded(l));
    latencies.push(latencyMs);
    if (client !== undefined) {
      const list = client.inFlight.get(r) ?? [];
      list.push(now() + latencyMs);
      client.inFlight.set(r, list);
    }
  };
  /** The client's own calls in flight at `r` now. */
  const inFlightAt = (client: SimClient, r: SimReplica): number => {
    const list = client.inFlight.get(r);
    if (list === undefined) return 0;
    let done = 0;
    while (done < list.length && list[done]! <= now()) done++;
    if (done > 0) list.splice(0, done);
    return list.length;
  };
  const byAddress = new Map(replicas.map((r) => [r.address, r]));
  const byMember = new Map<Member, SimReplica>();
  const clients: SimClient[] = scenario.clients.map((spec, i) => ({
    id: `client-${String(i + 1).padStart(4, '0')}`,
    spec,
    binding: [],
    everBound: false,
    sets: spec.sets ?? true,
    inFlight: new Map(),
    credits: [],
    baseline: new InFlightBaseline(),
  }));

  let rebinds = 0;
  /** One-member bindings the clients gave up (stall bound). */
  let givenUp = 0;
  const rebindTimesMs: number[] = [];
  let forwardsAtBalancer = 0;
  const sameBinding = (a: SimClient['binding'], b: SimClient['binding']) =>
    a.length === b.length && a.every((m, i) => m.replica === b[i]!.replica && m.permille === b[i]!.permille);
  const setBinding = (client: SimClient, replica: SimReplica | null | SimClient['binding']) => {
    const next = replica === null ? [] : Array.isArray(replica) ? replica : [{ replica, permille: 1000 }];
    if (client.everBound && next.length > 0 && !sameBinding(next, client.binding)) {
      rebinds++;
      rebindTimesMs.push(now());
    }
    if (!sameBinding(next, client.binding)) client.credits = [];
    client.binding = next;
    if (next.length > 0) client.everBound = true;
  };
  /** A binding string's members as simulated replicas (members not simulated are left out). */
  const replicasOf = (text: string): SimClient['binding'] => {
    const parsed = parseBinding(text);
    if (typeof parsed === 'string') return [];
    return parsed.flatMap((m) => {
      const r = byAddress.get(m.address);
      return r === undefined ? [] : [{ replica: r, permille: m.permille }];
    });
  };
  /** The client policy's pick inside a binding (pickOfTwo): smooth weighted round robin, challenged by a draw with fewer own calls in flight per share. */
  const pick = (client: SimClient): SimReplica => {
    const members = client.binding;
    if (members.length === 1) return members[0]!.replica;
    const first = smoothNext(members.map((m) => m.permille), client.credits);
    const choice = pickOfTwo(members.map((m) => ({ permille: m.permille, inFlight: inFlightAt(client, m.replica) })), random, first);
    return members[choice]!.replica;
  };

  // Replicas attach, report every interval, and detach.
  for (const r of replicas) {
    const attachAt = r.spec.attachMs ?? 0;
    scheduler.schedule(() => {
      const sink: AdvisorySink = {
        sendAdvisory: (advisory: Advisory) => {
          advisories++;
          const normalized = {
            seq: Number(advisory.seq ?? 0),
            recallAll: advisory.recallAll ?? false,
            expireMs: advisory.expireMs ?? 5000,
            moves: (advisory.moves ?? []).map((m) => ({ clientId: m.clientId ?? '', target: m.target ?? '', vouch: m.vouch ?? '', binding: m.binding ?? '', bindingVouch: m.bindingVouch ?? '' })),
            offerBinding: advisory.offerBinding ?? '',
            offerVouch: advisory.offerVouch ?? '',
            offerExpireMs: advisory.offerExpireMs ?? 0,
          };
          r.forwards.apply(sanitizeAdvisory(normalized).advisory);
          return true;
        },
        close: () => undefined,
      };
      const member = registry.attach({ protocolVersion: 1, group: 'sim', address: r.address, methods: [{ path: PATH, kind: 'UNARY' }], replicaId: '', resumeSecret: '' }, sink, now());
      if (!(member instanceof Member)) throw new Error(member.message);
      r.member = member;
      byMember.set(member, r);
      r.meter.snapshot(now(), 1, undefined, false);
      scheduler.schedule(function () {
        if (r.member === null) return;
        r.forwards.sweep();
        r.queue.drain(now(), (latencyMs) => r.meter.callEnded(latencyMs));
        const snapshot = r.meter.snapshot(now(), group.config.topClients, undefined, false);
        group.applyReport(r.member, { ...snapshot, seq: ++r.seq, custom: 0, hasCustom: false, forwards: 0, draining: false } as never, now());
        this.schedule(undefined, interval);
      }, interval);
    }, attachAt);
    if (r.spec.detachMs !== undefined) {
      scheduler.schedule(() => {
        if (r.member !== null) registry.detach(r.member, 'simulated detach');
        r.member = null;
      }, r.spec.detachMs);
    }
  }

  const live = (r: SimReplica | null): r is SimReplica => r !== null && r.member !== null && group.members.get(r.member.id) === r.member;

  const bindThroughBalancer = (client: SimClient): SimReplica | null => {
    forwardsAtBalancer++;
    const member = group.choose(PATH, 'bind', client.id, now());
    return member === null ? null : (byMember.get(member) ?? null);
  };

  const serve = (client: SimClient): void => {
    if (group.granularity === 'per-request' && !client.sets) {
      const member = group.choose(PATH, 'call', client.id, now());
      const r = member === null ? null : byMember.get(member);
      if (r) accept(r, null);
      else unservedCalls++;
      return;
    }
    // A binding with a member gone loses it (the client's connection fails); an empty one binds again.
    if (client.binding.some((m) => !live(m.replica))) {
      const left = client.binding.filter((m) => live(m.replica));
      setBinding(client, left.length === 0 ? null : left.length === 1 ? left[0]!.replica : left);
    }
    if (client.binding.length === 0) {
      if (group.granularity === 'per-request') {
        forwardsAtBalancer++;
        const direct = group.directBinding(PATH, client.id, now());
        setBinding(client, direct === null ? null : replicasOf(direct.text));
      } else {
        setBinding(client, bindThroughBalancer(client));
      }
    }
    // The client policy's stall bound: a one-member binding whose calls pile up is given up, back to
    // the balancer asking to avoid that member (the call itself goes where the new binding says).
    if (client.binding.length === 1) {
      const only = client.binding[0]!.replica;
      const inFlight = inFlightAt(client, only);
      if (inFlight >= stallLimit(STALL_DEFAULTS, client.baseline.value)) {
        forwardsAtBalancer++;
        givenUp++;
        const member = group.choose(PATH, 'bind', client.id, now(), new Set([only.address]));
        setBinding(client, member === null ? null : (byMember.get(member) ?? null));
      }
      client.baseline.sample(inFlight, now());
    }
    let target: SimReplica | null = client.binding.length > 0 ? pick(client) : null;
    for (let hops = 0; target !== null && hops < 5; hops++) {
      const decision = target.forwards.take(client.id, client.sets);
      if (decision === null || isPiggyBack(decision)) {
        accept(target, client.id, client);
        if (decision !== null) {
          // Piggy-backed on the OK response: later calls follow the new binding.
          target.forwards.settle(decision, true);
          target.meter.forwarded();
          const next = replicasOf(decision.binding);
          if (next.length > 0) setBinding(client, next);
        }
        return;
      }
      target.meter.forwarded();
      const next = decision.target === FORWARD_TO_BALANCER ? bindThroughBalancer(client) : (byAddress.get(decision.target) ?? null);
      target = live(next) ? next : bindThroughBalancer(client);
      setBinding(client, target);
    }
    // No replica, or still forwarded after 5 hops (a client gives up the same way).
    unservedCalls++;
  };

  // Clients call on a fixed schedule (or Poisson), each with a random phase.
  // Poisson gaps come from their own random stream so that adding a Poisson
  // client does not change the phases (and the balancer's draws) of the others.
  const poissonRandom = seededRandom(((scenario.seed ?? 1) ^ 0x9e3779b9) >>> 0);
  for (const [i, client] of clients.entries()) {
    const spec = client.spec;
    const startMs = spec.startMs ?? 0;
    const changes = spec.rateChanges ?? [];
    const poisson = spec.arrivals === 'poisson';
    const gapMs = (rate: number) => (poisson ? (-Math.log(1 - poissonRandom()) * 1000) / rate : 1000 / rate);
    // The phase is drawn for every client, in client order, as it always was (the paper's runs depend on it).
    const phase = random();
    if (scenario.initialBinding === 'round-robin') {
      scheduler.schedule(() => {
        const r = replicas[i % replicas.length]!;
        if (live(r)) setBinding(client, r);
      }, startMs);
    }
    /** Starts a stretch of constant rate at `fromMs` (the start or a rate change), ending at the next change. */
    const stretch = (fromMs: number): void => {
      const rate = stepAt(spec.rate, changes, fromMs, (c) => c.rate);
      const nextChangeMs = changes.find((c) => c.atMs > fromMs)?.atMs;
      if (!(rate > 0)) {
        if (nextChangeMs !== undefined) scheduler.schedule(() => stretch(nextChangeMs), nextChangeMs - now());
        return;
      }
      const period = 1000 / rate;
      const first = fromMs + (poisson ? gapMs(rate) : phase * period);
      scheduler.schedule(function () {
        if (spec.stopMs !== undefined && now() >= spec.stopMs) return;
        if (nextChangeMs !== undefined && now() >= nextChangeMs) return stretch(nextChangeMs);
        serve(client);
        const gap = poisson ? gapMs(rate) : period;
        if (nextChangeMs !== undefined && now() + gap >= nextChangeMs) scheduler.schedule(() => stretch(nextChangeMs), nextChangeMs - now());
        else this.schedule(undefined, gap);
      }, first - now());
    };
    stretch(startMs);
  }

  for (const s of scenario.switches ?? []) {
    scheduler.schedule(() => {
      if (s.strategy !== undefined) group.setStrategy(s.strategy, s.params ?? {});
      if (s.granularity !== undefined) {
        const before = group.granularity;
        group.setGranularity(s.granularity);
        // As the admin API does: a switch to per-request recalls (and offers), one away from it ends that.
        if (s.granularity === 'per-request' && before !== 'per-request') analyzer.sendRecall(group, true);
        else if (before === 'per-request' && s.granularity !== 'per-request') analyzer.sendRecall(group, false);
      }
    }, s.atMs);
  }

  // Ground truth: calls served per replica per sample window.
  const series: SeriesRow[] = [];
  const lastServed = replicas.map(() => 0);
  scheduler.schedule(function () {
    const row = [round(now() / 1000, 3)];
    replicas.forEach((r, i) => {
      row.push(round(((r.served - lastServed[i]!) * 1000) / sampleMs, 2));
      lastServed[i] = r.served;
    });
    series.push(row);
    this.schedule(undefined, sampleMs);
  }, sampleMs);

  analyzer.start();
  scheduler.flush();
  analyzer.stop();

  const samplesPerInterval = Math.max(1, Math.round(interval / sampleMs));
  const intervalLoads: number[][] = [];
  for (let k = 0; (k + 1) * samplesPerInterval <= series.length; k++) {
    const rows = series.slice(k * samplesPerInterval, (k + 1) * samplesPerInterval);
    intervalLoads.push(replicas.map((_, i) => round(rows.reduce((s, row) => s + row[i + 1]!, 0) / rows.length, 2)));
  }
  const durationS = scenario.durationMs / 1000;
  // Calls still queued when the run ends have their completion times fixed already.
  const sorted = Float64Array.from(latencies).sort();
  return {
    scenario: scenario.name,
    reportIntervalMs: interval,
    replicas: replicas.map((r) => r.spec.name),
    series,
    rebinds,
    rebindTimesMs,
    advisories,
    forwardsAtBalancer,
    convergenceS: convergenceSeconds(series),
    steady: steadyState(series, durationS / 2),
    intervalLoads,
    latency: {
      calls: sorted.length,
      p50Ms: round(percentile(sorted, 50), 3),
      p99Ms: round(percentile(sorted, 99), 3),
      maxMs: round(sorted.length > 0 ? sorted[sorted.length - 1]! : NaN, 3),
    },
    maxInFlight: replicas.map((r) => r.queue.maxInFlight),
    unservedCalls,
    durationMs: scenario.durationMs,
    givenUp,
    finalBindingSizes: clients.map((c) => c.binding.length),
  };
}

/** The value of a step function at `tMs`: `initial`, or the last change with atMs ≤ tMs (changes ascending). */
function stepAt<C extends { atMs: number }>(initial: number, changes: readonly C[], tMs: number, value: (c: C) => number): number {
  let v = initial;
  for (const c of changes) {
    if (c.atMs > tMs) break;
    v = value(c);
  }
  return v;
}
