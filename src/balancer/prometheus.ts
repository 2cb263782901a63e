/**
 * Prometheus metrics of one balancer (prom-client), served on the admin
 * HTTP port at /metrics. Values are read from the registry and the groups'
 * counters when scraped, so the hot paths (binds, proxied calls, reports)
 * only bump plain numbers. Each balancer has its own prom-client registry:
 * several balancers in one process (tests, embedding) do not mix.
 *
 * A scrape's cost is bounded whatever the fleet: per-member series are
 * written for at most `maxMemberSeries` members (the others counted in
 * rebind_member_series_omitted), as exposition text directly, with each
 * member's label string built once (prom-client's per-label-set objects,
 * hashing and formatting were ~17 µs per member per scrape); the
 * bindings-size histogram is kept by the ledger as bindings change.
 */
import { readdirSync } from 'node:fs';
import { Counter, Gauge, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';
import { DEFAULT_MAX_MEMBER_SERIES } from './config';
import { callerCacheStats, MAX_BINDING_MEMBERS } from '../common/wire';
import type { Group, GroupCounters } from './group';
import type { Member } from './member';
import type { Registry } from './registry';
import { ErrorCode, type H2ClientCounters, type H2Counters } from '../h2';

/** At most one warning per this long that members were left out of /metrics (ms). */
export const MEMBER_SERIES_WARN_INTERVAL_MS = 60_000;

export interface MetricSources {
  registry: Registry;
  /** Inputs refused, by reason (control, admin and data plane). */
  refusals: ReadonlyMap<string, number>;
  /** The xDS server's figures, if it runs. */
  xds?: () => { streams: number; pushes: number; nacks: number } | null;
  /** The HA coordinator's view (only with `ha`: the rebind_ha_* metrics exist only then). */
  ha?: () => HaMetricSource;
  /** The data port's HTTP/2 transport: its counters and open connections (null before it listens). */
  dataH2?: () => { counters: H2Counters; connections: number } | null;
  /** The control port's listener: connections by the server they went to, and the Control connections' transport counters. */
  controlPort?: () => ControlPortMetricSource;
  /** The relay's upstream HTTP/2 client (UpstreamPool): its counters and open connections to replicas. */
  upstreamH2?: () => { counters: H2ClientCounters; connections: number };
}

/** rebind's HTTP/2 transport counters, exported as rebind_data_h2_events_total{event} (data port) and rebind_control_h2_events_total{event} (Control connections). */
const H2_EVENTS: readonly (readonly [event: string, value: (c: H2Counters) => number])[] = [
  ['connection_accepted', (c) => c.connectionsAccepted],
  ['connection_closed', (c) => c.connectionsClosed],
  ['stream_opened', (c) => c.streamsOpened],
  ['stream_refused', (c) => c.streamsRefused],
  ['header_list_too_large', (c) => c.headerListTooLarge],
  ['malformed_request', (c) => c.malformedRequests],
  ['continuation_flood', (c) => c.continuationFloods],
  ['rapid_reset', (c) => c.rapidResets],
  ['empty_frame_flood', (c) => c.emptyFrameFloods],
  ['output_overflow', (c) => c.outputOverflows],
  ['stream_output_overflow', (c) => c.streamOutputOverflows],
  ['handshake_timeout', (c) => c.handshakeTimeouts],
  ['idle_timeout', (c) => c.idleTimeouts],
  ['bad_preface', (c) => c.badPrefaces],
  ['reset_received', (c) => c.resetsReceived],
  ['ping_received', (c) => c.pingsReceived],
];

/** The relay's upstream HTTP/2 client counters exported as rebind_upstream_h2_events_total{event}. */
const UPSTREAM_H2_EVENTS: readonly (readonly [event: string, value: (c: H2ClientCounters) => number])[] = [
  ['connection_opened', (c) => c.connectionsOpened],
  ['connection_closed', (c) => c.connectionsClosed],
  ['stream_opened', (c) => c.streamsOpened],
  ['header_list_too_large', (c) => c.headerListTooLarge],
  ['malformed_response', (c) => c.malformedResponses],
  ['continuation_flood', (c) => c.continuationFloods],
  ['empty_frame_flood', (c) => c.emptyFrameFloods],
  ['output_overflow', (c) => c.outputOverflows],
  ['stream_output_overflow', (c) => c.streamOutputOverflows],
  ['goaway_received', (c) => c.goawaysReceived],
  ['stream_refused_by_goaway', (c) => c.streamsRefusedByGoaway],
  ['reset_received', (c) => c.resetsReceived],
  ['ping_received', (c) => c.pingsReceived],
];

/** HTTP/2 error code names (RFC 9113 §7) for the goaway metric's label. */
const H2_ERROR_NAMES = new Map<number, string>(Object.entries(ErrorCode).map(([name, code]) => [code, name]));

/** What the rebind_control_* metrics read (ControlPort.stats()). */
export interface ControlPortMetricSource {
  routedToH2: number;
  routedToGrpc: number;
  h2Connections: number;
  /** rebind's transport counters of the Control connections. */
  counters: H2Counters;
}

/** What the rebind_ha_* metrics read. */
export interface HaMetricSource {
  etcdUp: boolean;
  /** Groups this balancer campaigns for, and whether it leads each. */
  leading: [group: string, leading: boolean][];
  /** Live balancers registered in etcd (as last seen). */
  balancers: number;
  /** Times this balancer became a group's leader, by group. */
  leaderGains: ReadonlyMap<string, number>;
}

/** Per-group counters exported as `rebind_<name>_total`, with their help text. */
const GROUP_COUNTERS: { name: string; help: string; value: (c: GroupCounters) => number; labels?: Record<string, string> }[] = [
  { name: 'rebind_forwards_total', help: 'Forwards clients were sent, by who sent them: the balancer (bindings) or a replica (advisory moves, recalls, drains; counted from its load reports)', value: (c) => c.forwards, labels: { by: 'balancer' } },
  { name: 'rebind_forwards_total', help: '', value: (c) => c.replicaForwards, labels: { by: 'replica' } },
  { name: 'rebind_proxied_calls_total', help: 'Calls the balancer proxied to a member (plain clients, per-request granularity, affinity)', value: (c) => c.proxiedCalls },
  { name: 'rebind_advisories_total', help: 'Load advisories sent to members', value: (c) => c.advisories },
  { name: 'rebind_moves_total', help: 'Client moves carried by the advisories sent', value: (c) => c.movesSent },
  { name: 'rebind_binds_total', help: 'Bindings handed out by the balancer', value: (c) => c.binds },
  { name: 'rebind_rebinds_total', help: 'Re-bindings: a client moved by an advisory (via="advisory") or bound by the balancer to another member than before (via="balancer")', value: (c) => c.movesSent, labels: { via: 'advisory' } },
  { name: 'rebind_rebinds_total', help: '', value: (c) => c.rebinds, labels: { via: 'balancer' } },
  { name: 'rebind_load_reports_total', help: 'Load reports applied', value: (c) => c.reports },
  { name: 'rebind_control_attaches_total', help: 'Replica attachments accepted', value: (c) => c.attaches },
  { name: 'rebind_members_set_aside_total', help: 'Times a member was set aside (no new clients, no plan moves for holdMs) because clients gave it up with rebind-avoid', value: (c) => c.membersAvoided },
  { name: 'rebind_control_reconnects_total', help: 'Attachments of a replica that had attached before (its control stream re-established)', value: (c) => c.reattaches },
];

/** Per-group ledger counters exported as counters, with their help text. */
const LEDGER_COUNTERS: { name: string; help: string; value: (g: Group) => number }[] = [
  { name: 'rebind_ledger_bindings_evicted_total', help: 'Remembered bindings forgotten because the ledger held its bound (100,000 clients per group): those clients\' next binds count as first binds', value: (g) => g.ledger.counters.bindingsEvicted },
  { name: 'rebind_ledger_recent_binds_evicted_total', help: 'Recent binds forgotten while still fresh (less than a report interval old) because the ledger held its bound of recent binds: a racing first call of that client may be bound elsewhere', value: (g) => g.ledger.counters.recentBindsEvicted },
];

/** A per-member gauge: its name, help text and value. */
interface MemberSeries {
  name: string;
  help: string;
  value: (m: Member, nowMs: number) => number;
}

const MEMBER_SERIES: MemberSeries[] = [
  { name: 'rebind_member_load', help: "Member's latest reported load, in its group's metric (raw)", value: (m) => m.rawLoad },
  { name: 'rebind_member_dampened_load', help: "Member's dampened load, the value strategies decide on", value: (m) => m.load },
  { name: 'rebind_member_calls_per_second', help: 'Calls per second the member served in its last report interval', value: (m) => m.latest?.callsPerS ?? 0 },
  { name: 'rebind_member_in_flight', help: 'Calls in flight at the member at its last report', value: (m) => m.latest?.inFlight ?? 0 },
  { name: 'rebind_member_clients', help: 'Movable (direct) clients the member reported', value: (m) => m.clients.size },
  { name: 'rebind_member_last_report_age_seconds', help: "Seconds since the member's last load report (or its attachment)", value: (m, nowMs) => Math.max(0, (nowMs - m.lastReportAtMs) / 1000) },
];

/** A label value escaped as the Prometheus text format asks: backslash, double quote and newline. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/** A sample value as the text format writes it (NaN, +Inf, -Inf for the non-finite ones). */
function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

/** Metrics written as exposition text by the balancer, not by prom-client (see {@link BalancerMetricsRegistry}). */
interface TextFamilies {
  /** The families' names (to answer getSingleMetricAsString). */
  readonly names: readonly string[];
  /** The families' exposition text, each `# HELP`, `# TYPE` and samples; ends with a newline. */
  render(): string;
  /** One family's text, without its final newline. */
  renderOne(name: string): string;
}

/**
 * The balancer's prom-client registry, with the per-member families written
 * as text after prom-client's own (see the module comment). They are not in
 * getMetricsAsJSON(); metrics() and getSingleMetricAsString() have them.
 */
export class BalancerMetricsRegistry extends PromRegistry {
  private text: TextFamilies | null = null;

  /** Sets the families written as text (once, by {@link balancerMetrics}). */
  setTextFamilies(text: TextFamilies): void {
    this.text = text;
  }

  override async metrics(): Promise<string> {
    const base = await super.metrics();
    return this.text === null ? base : `${base}\n${this.text.render()}`;
  }

  override async getSingleMetricAsString(name: string): Promise<string> {
    if (this.text !== null && this.text.names.includes(name)) return this.text.renderOne(name);
    return super.getSingleMetricAsString(name);
  }
}

/** Where balancerMetrics warns that members were left out (a pino logger will do). */
export interface MetricsLog {
  warn(obj: object, msg: string): void;
}

/** Options of {@link balancerMetrics}. */
export interface BalancerMetricsOptions {
  /** Export Node's process metrics (default true). */
  processMetrics?: boolean;
  /** Members with per-member series (limits.maxMemberSeries; default {@link DEFAULT_MAX_MEMBER_SERIES}). */
  maxMemberSeries?: number;
  /** Warned (at most once per {@link MEMBER_SERIES_WARN_INTERVAL_MS}) while members are left out. */
  log?: MetricsLog;
  /** The wall clock (ms), for report ages and the warning's interval. */
  nowMs?: () => number;
}

/** Creates the metrics of one balancer. */
export function balancerMetrics(sources: MetricSources, options: BalancerMetricsOptions = {}): BalancerMetricsRegistry {
  const registry = new BalancerMetricsRegistry();
  const groups = () => sources.registry.groups.values();
  const maxMemberSeries = options.maxMemberSeries ?? DEFAULT_MAX_MEMBER_SERIES;
  const nowMs = options.nowMs ?? Date.now;

  /** Members of each group with series: the first `maxMemberSeries` over the groups in order (O(groups)). */
  const shownPerGroup = (): Map<Group, number> => {
    const shown = new Map<Group, number>();
    let left = maxMemberSeries;
    for (const g of groups()) {
      const n = Math.min(left, g.members.size);
      shown.set(g, n);
      left -= n;
    }
    return shown;
  };
  /** Each member's label string, built once (a member's group, id and address never change). */
  const memberLabels = new WeakMap<Member, string>();
  const labelsOf = (m: Member): string => {
    let labels = memberLabels.get(m);
    if (labels === undefined) {
      labels = `{group="${escapeLabelValue(m.group)}",member="${escapeLabelValue(m.id)}",address="${escapeLabelValue(m.address)}"}`;
      memberLabels.set(m, labels);
    }
    return labels;
  };
  let lastWarnAtMs = Number.NEGATIVE_INFINITY;
  const renderFamilies = (families: readonly MemberSeries[]): string => {
    const now = nowMs();
    const shown = shownPerGroup();
    let omitted = 0;
    const parts: string[] = [];
    for (const family of families) {
      parts.push(`# HELP ${family.name} ${family.help}\n# TYPE ${family.name} gauge\n`);
      for (const [g, n] of shown) {
        let k = 0;
        for (const m of g.members.values()) {
          if (k++ >= n) break;
          parts.push(`${family.name}${labelsOf(m)} ${formatValue(family.value(m, now))}\n`);
        }
      }
    }
    for (const [g, n] of shown) omitted += g.members.size - n;
    if (omitted > 0 && now - lastWarnAtMs >= MEMBER_SERIES_WARN_INTERVAL_MS) {
      lastWarnAtMs = now;
      options.log?.warn({ omitted, maxMemberSeries }, `/metrics: ${omitted} member(s) have no per-member series (limits.maxMemberSeries=${maxMemberSeries}); rebind_member_series_omitted counts them by group`);
    }
    return parts.join('');
  };
  registry.setTextFamilies({
    names: MEMBER_SERIES.map((f) => f.name),
    render: () => renderFamilies(MEMBER_SERIES),
    renderOne: (name) => renderFamilies(MEMBER_SERIES.filter((f) => f.name === name)).replace(/\n$/, ''),
  });
  new Gauge({
    name: 'rebind_member_series_omitted',
    help: 'Members of the group without per-member series on /metrics (rebind_member_*): beyond limits.maxMemberSeries over all groups',
    labelNames: ['group'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [g, n] of shownPerGroup()) this.set({ group: g.name }, g.members.size - n);
    },
  });

  new Gauge({
    name: 'rebind_group_info',
    help: 'One per group: its current strategy, granularity and load metric (value 1)',
    labelNames: ['group', 'strategy', 'granularity', 'metric'],
    registers: [registry],
    collect() {
      this.reset();
      for (const g of groups()) this.set({ group: g.name, strategy: g.strategyName, granularity: g.granularity, metric: g.config.metric }, 1);
    },
  });

  new Gauge({
    name: 'rebind_group_members',
    help: 'Members per group and state (ATTACHED, NOMINAL, SHEDDING, DRAINING, SUSPECT)',
    labelNames: ['group', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const g of groups()) {
        const counts = new Map<string, number>([
          ['ATTACHED', 0],
          ['NOMINAL', 0],
          ['SHEDDING', 0],
          ['DRAINING', 0],
          ['SUSPECT', 0],
        ]);
        for (const m of g.members.values()) counts.set(m.state, (counts.get(m.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ group: g.name, state }, n);
      }
    },
  });

  new Gauge({
    name: 'rebind_group_indexed_clients',
    help: "Distinct clients with an entry on some member of the group (the group's client-to-members index)",
    labelNames: ['group'],
    registers: [registry],
    collect() {
      this.reset();
      for (const g of groups()) this.set({ group: g.name }, g.indexedClients);
    },
  });

  for (const spec of LEDGER_COUNTERS) {
    new Counter({
      name: spec.name,
      help: spec.help,
      labelNames: ['group'],
      registers: [registry],
      collect() {
        this.reset();
        for (const g of groups()) this.inc({ group: g.name }, spec.value(g));
      },
    });
  }

  // The caller-identity (user-agent) cache is per process: these are the process's figures.
  new Counter({
    name: 'rebind_caller_cache_lookups_total',
    help: "Lookups of plain callers' user-agents in the caller-identity cache (this process), by result: hit or miss (parsed)",
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      const stats = callerCacheStats();
      this.inc({ result: 'hit' }, stats.hits);
      this.inc({ result: 'miss' }, stats.misses);
    },
  });
  new Counter({
    name: 'rebind_caller_cache_clears_total',
    help: 'Times the caller-identity cache (this process) was cleared because it held its bound of distinct user-agents',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(callerCacheStats().clears);
    },
  });
  new Gauge({
    name: 'rebind_caller_cache_entries',
    help: 'User-agents in the caller-identity cache (this process)',
    registers: [registry],
    collect() {
      this.set(callerCacheStats().size);
    },
  });

  new Gauge({
    name: 'rebind_bindings',
    help: `Clients whose remembered binding has \`size\` members (1..${MAX_BINDING_MEMBERS}), per group`,
    labelNames: ['group', 'size'],
    registers: [registry],
    collect() {
      this.reset();
      for (const g of groups()) {
        const sizes = g.ledger.sizeHistogram();
        for (let size = 1; size <= MAX_BINDING_MEMBERS; size++) this.set({ group: g.name, size: String(size) }, sizes[size] ?? 0);
      }
    },
  });

  // The planner's last decision: its expected gain is before - after (absent before the first plan).
  const lastPlan = (name: string, help: string, value: (p: NonNullable<Group['lastPlan']>) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['group'],
      registers: [registry],
      collect() {
        this.reset();
        for (const g of groups()) if (g.lastPlan !== null) this.set({ group: g.name }, value(g.lastPlan));
      },
    });
  lastPlan('rebind_plan_dispersion_before', "Σ(L−μ)² of the planned members' loads before the last plan that moved clients (group metric squared)", (p) => p.dispersionBefore);
  lastPlan('rebind_plan_dispersion_after', 'Σ(L−μ)² the last plan expects after its moves: the expected gain is before - after', (p) => p.dispersionAfter);
  lastPlan('rebind_plan_moves', 'Moves of the last plan that moved clients', (p) => p.moves.length);

  const byName = new Map<string, (typeof GROUP_COUNTERS)[number][]>();
  for (const c of GROUP_COUNTERS) byName.set(c.name, [...(byName.get(c.name) ?? []), c]);
  for (const [name, specs] of byName) {
    const extra = Object.keys(specs[0]!.labels ?? {});
    new Counter({
      name,
      help: specs[0]!.help,
      labelNames: ['group', ...extra],
      registers: [registry],
      collect() {
        this.reset();
        for (const g of groups()) for (const spec of specs) this.inc({ group: g.name, ...spec.labels }, spec.value(g.counters));
      },
    });
  }

  new Gauge({
    name: 'rebind_xds_streams',
    help: 'xDS (ADS) streams open: proxyless gRPC clients connected',
    registers: [registry],
    collect() {
      this.set(sources.xds?.()?.streams ?? 0);
    },
  });
  new Counter({
    name: 'rebind_xds_pushes_total',
    help: "Re-bindings pushed to xDS clients: EDS responses that changed a client's assignment after its first",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sources.xds?.()?.pushes ?? 0);
    },
  });

  const controlPort = sources.controlPort;
  if (controlPort !== undefined) {
    new Counter({
      name: 'rebind_control_connections_total',
      help: "Connections accepted on the control port, by the server their first call went to: rebind (Control/Attach, rebind's HTTP/2 transport) or grpc-js (Admin, xDS)",
      labelNames: ['server'],
      registers: [registry],
      collect() {
        this.reset();
        const s = controlPort();
        this.inc({ server: 'rebind' }, s.routedToH2);
        this.inc({ server: 'grpc-js' }, s.routedToGrpc);
      },
    });
    new Gauge({
      name: 'rebind_control_h2_connections',
      help: "Control (Attach) connections open on rebind's HTTP/2 transport",
      registers: [registry],
      collect() {
        this.set(controlPort().h2Connections);
      },
    });
    new Counter({
      name: 'rebind_control_h2_events_total',
      help: "Transport events of the Control connections (rebind's HTTP/2 transport), by event: streams opened/refused, malformed or oversized requests, floods, timeouts, resets and pings received",
      labelNames: ['event'],
      registers: [registry],
      collect() {
        this.reset();
        const c = controlPort().counters;
        for (const [event, value] of H2_EVENTS) this.inc({ event }, value(c));
      },
    });
  }

  const ha = sources.ha;
  if (ha !== undefined) {
    new Gauge({
      name: 'rebind_ha_etcd_up',
      help: 'Whether etcd answered this balancer\'s last call (1) or not (0: serving from what it has, not planning)',
      registers: [registry],
      collect() {
        this.set(ha().etcdUp ? 1 : 0);
      },
    });
    new Gauge({
      name: 'rebind_ha_leader',
      help: "1 if this balancer is the group's proven planning leader, else 0",
      labelNames: ['group'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [group, leading] of ha().leading) this.set({ group }, leading ? 1 : 0);
      },
    });
    new Gauge({
      name: 'rebind_ha_balancers',
      help: 'Balancers registered in etcd (live leases), as this balancer last saw them',
      registers: [registry],
      collect() {
        this.set(ha().balancers);
      },
    });
    new Counter({
      name: 'rebind_ha_leader_changes_total',
      help: "Times this balancer became a group's leader (summed over the balancers: the group's leader changes)",
      labelNames: ['group'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [group, n] of ha().leaderGains) this.inc({ group }, n);
      },
    });
  }

  new Gauge({
    name: 'rebind_data_connections',
    help: 'Client connections open on the data port',
    registers: [registry],
    collect() {
      this.set(sources.dataH2?.()?.connections ?? 0);
    },
  });
  new Counter({
    name: 'rebind_data_h2_events_total',
    help: "The data port's HTTP/2 transport: connections, streams, and what it refused or cut off (refused streams, rapid resets, CONTINUATION and empty-frame floods, output overflows, timeouts), by event",
    labelNames: ['event'],
    registers: [registry],
    collect() {
      this.reset();
      const h2 = sources.dataH2?.();
      if (h2 === null || h2 === undefined) return;
      for (const [event, value] of H2_EVENTS) this.inc({ event }, value(h2.counters));
    },
  });
  new Counter({
    name: 'rebind_data_h2_goaways_total',
    help: 'Connection errors the data port sent (GOAWAY with a code other than NO_ERROR), by HTTP/2 error code name',
    labelNames: ['code'],
    registers: [registry],
    collect() {
      this.reset();
      const h2 = sources.dataH2?.();
      if (h2 === null || h2 === undefined) return;
      for (const [code, n] of Object.entries(h2.counters.goawayByCode)) this.inc({ code: H2_ERROR_NAMES.get(Number(code)) ?? `0x${Number(code).toString(16)}` }, n);
    },
  });
  new Gauge({
    name: 'rebind_upstream_connections',
    help: "The relay's HTTP/2 connections to replicas (per-request path)",
    registers: [registry],
    collect() {
      this.set(sources.upstreamH2?.().connections ?? 0);
    },
  });
  new Counter({
    name: 'rebind_upstream_h2_events_total',
    help: "The relay's HTTP/2 client towards replicas: connections, streams, GOAWAYs and resets received, and what it cut off (malformed or oversized responses, CONTINUATION and empty-frame floods, output overflows), by event",
    labelNames: ['event'],
    registers: [registry],
    collect() {
      this.reset();
      const h2 = sources.upstreamH2?.();
      if (h2 === undefined) return;
      for (const [event, value] of UPSTREAM_H2_EVENTS) this.inc({ event }, value(h2.counters));
    },
  });
  new Counter({
    name: 'rebind_upstream_h2_goaways_total',
    help: "Connection errors the relay sent to replicas (GOAWAY with a code other than NO_ERROR: the replica broke the protocol), by HTTP/2 error code name",
    labelNames: ['code'],
    registers: [registry],
    collect() {
      this.reset();
      const h2 = sources.upstreamH2?.();
      if (h2 === undefined) return;
      for (const [code, n] of Object.entries(h2.counters.goawayByCode)) this.inc({ code: H2_ERROR_NAMES.get(Number(code)) ?? `0x${Number(code).toString(16)}` }, n);
    },
  });
  new Counter({
    name: 'rebind_refused_inputs_total',
    help: 'Inputs refused (malformed, hostile or out of order control messages, unauthenticated calls, bad requests on the data port), by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of sources.refusals) this.inc({ reason }, n);
    },
  });

  if (options.processMetrics !== false) {
    collectDefaultMetrics({ register: registry });
    boundProcessMetrics(registry);
  }
  return registry;
}

/** How long a process_open_fds reading is reused (ms): reading it lists /proc/self/fd. */
export const OPEN_FDS_MAX_AGE_MS = 30_000;

/**
 * Takes out prom-client's default metrics that cost O(connections) on the
 * event loop at every scrape: nodejs_active_handles and
 * nodejs_active_handles_total (each lists every libuv handle, one per socket)
 * and process_open_fds (lists /proc/self/fd). At 10,000 attached replicas
 * they took ~30 ms of each scrape (bench:scale profile, 10,000 replicas
 * idle), a stall for every bind and report behind it. The connections are
 * counted by rebind's own gauges (rebind_data_connections,
 * rebind_upstream_connections, rebind_control_h2_connections);
 * process_open_fds comes back read at most every {@link OPEN_FDS_MAX_AGE_MS}.
 */
function boundProcessMetrics(registry: PromRegistry, nowMs: () => number = Date.now): void {
  for (const name of ['nodejs_active_handles', 'nodejs_active_handles_total', 'process_open_fds']) registry.removeSingleMetric(name);
  if (process.platform !== 'linux') return;
  let readAtMs = Number.NEGATIVE_INFINITY;
  let open = 0;
  new Gauge({
    name: 'process_open_fds',
    help: `Number of open file descriptors (read from /proc/self/fd at most every ${OPEN_FDS_MAX_AGE_MS / 1000} s: the read is O(open descriptors)).`,
    registers: [registry],
    collect() {
      const now = nowMs();
      if (now - readAtMs >= OPEN_FDS_MAX_AGE_MS) {
        try {
          // Minus the descriptor readdir itself held.
          open = readdirSync('/proc/self/fd').length - 1;
          readAtMs = now;
        } catch {
          return;
        }
      }
      this.set(open);
    },
  });
}
