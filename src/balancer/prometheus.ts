/**
 * Prometheus metrics of one balancer (prom-client), served on the admin
 * HTTP port at /metrics. Values are read from the registry and the groups'
 * counters when scraped, so the hot paths (binds, proxied calls, reports)
 * only bump plain numbers. Each balancer has its own prom-client registry:
 * several balancers in one process (tests, embedding) do not mix.
 */
import { Counter, Gauge, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';
import { MAX_BINDING_MEMBERS } from '../common/wire';
import type { Group, GroupCounters } from './group';
import type { Registry } from './registry';

export interface MetricSources {
  registry: Registry;
  /** Inputs refused, by reason (control, admin and data plane). */
  refusals: ReadonlyMap<string, number>;
  /** The xDS server's figures, if it runs. */
  xds?: () => { streams: number; pushes: number; nacks: number } | null;
  /** The HA coordinator's view (only with `ha`: the rebind_ha_* metrics exist only then). */
  ha?: () => HaMetricSource;
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

/** Creates the metrics of one balancer. */
export function balancerMetrics(sources: MetricSources, options: { processMetrics?: boolean } = {}): PromRegistry {
  const registry = new PromRegistry();
  const groups = () => sources.registry.groups.values();

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

  const perMember = (name: string, help: string, value: (m: import('./member').Member) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['group', 'member', 'address'],
      registers: [registry],
      collect() {
        this.reset();
        for (const g of groups()) for (const m of g.members.values()) this.set({ group: g.name, member: m.id, address: m.address }, value(m));
      },
    });
  perMember('rebind_member_load', "Member's latest reported load, in its group's metric (raw)", (m) => m.rawLoad);
  perMember('rebind_member_dampened_load', "Member's dampened load, the value strategies decide on", (m) => m.load);
  perMember('rebind_member_calls_per_second', 'Calls per second the member served in its last report interval', (m) => m.latest?.callsPerS ?? 0);
  perMember('rebind_member_in_flight', 'Calls in flight at the member at its last report', (m) => m.latest?.inFlight ?? 0);
  perMember('rebind_member_clients', 'Movable (direct) clients the member reported', (m) => m.clients.size);
  perMember('rebind_member_last_report_age_seconds', "Seconds since the member's last load report (or its attachment)", (m) => Math.max(0, (Date.now() - m.lastReportAtMs) / 1000));

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

  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  return registry;
}
