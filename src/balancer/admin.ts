/**
 * Run-time administration: inspect groups, change a group's strategy or
 * granularity. Used by the Admin gRPC service, the CLI and the dashboard.
 * Changes take effect at the next decision (binding, proxied call or
 * analysis), so within one report interval, and fail no client call.
 */
import { status as Status } from '@grpc/grpc-js';
import type { Logger } from '../common/logger';
import type { GroupStatus } from '../generated/rebind/v1/GroupStatus';
import type { HaStatus } from '../generated/rebind/v1/HaStatus';
import type { AdminHandlers } from '../generated/rebind/v1/Admin';
import type { Method__Output } from '../generated/rebind/v1/Method';
import type { Analyzer } from './analyzer';
import { GRANULARITIES, parseGroupSettings, type Granularity } from './config';
import type { Group } from './group';
import type { Binding, BindingVia } from './ledger';
import type { Registry } from './registry';
import { parseParams } from './strategies/params';
import { strategyFactory, strategyNames } from './strategies/index';
import { isRefusal, type Refusal } from './validate';

/** Bindings per group the dashboard is sent (its snapshots and /api/state when not told otherwise). */
export const DEFAULT_BINDINGS_SHOWN = 25;
/**
 * Most bindings listed per group in one answer, whatever is asked: a ledger
 * remembers up to 100,000 clients, each binding up to 16 members.
 */
export const MAX_BINDINGS_SHOWN = 1000;
/** Moves of the last plan listed (a plan may move many clients; all are counted). */
export const MAX_PLAN_MOVES_SHOWN = 100;

/** One member of a listed binding. */
export interface BindingMemberView {
  memberId: string;
  /** Empty when the member has left the group since. */
  address: string;
  permille: number;
}

/** A client's binding as operators are shown it. */
export interface BindingView {
  clientId: string;
  members: BindingMemberView[];
  /** When it was made: the ledger's time (wall-clock ms in a running balancer). */
  sinceUnixMs: number;
  via: BindingVia;
}

/** One move of the last plan, with addresses (empty for a member that has left). */
export interface PlanMoveView {
  clientId: string;
  fromMemberId: string;
  fromAddress: string;
  toMemberId: string;
  toAddress: string;
  load: number;
}

/** The planner's last decision: its expected gain is dispersionBefore - dispersionAfter. */
export interface PlanView {
  /** The analyzer's time (wall-clock ms in a running balancer). */
  atUnixMs: number;
  moveCount: number;
  /** The first {@link MAX_PLAN_MOVES_SHOWN} moves. */
  moves: PlanMoveView[];
  dispersionBefore: number;
  dispersionAfter: number;
}

/** What operators are shown of a group's ledger and last plan. */
export interface LedgerView {
  /** The most recently made bindings, most recent first. */
  bindings: BindingView[];
  /** Clients whose binding the ledger remembers. */
  bindingCount: number;
  /** Element n: remembered bindings of n members (element 0 is 0). */
  bindingSizes: number[];
  lastPlan: PlanView | null;
}

/** How many bindings a caller asked for, or a refusal naming the accepted range. */
export function parseBindingsShown(n: number): number | Refusal {
  if (Number.isInteger(n) && n >= 0 && n <= MAX_BINDINGS_SHOWN) return n;
  return { code: Status.INVALID_ARGUMENT, message: `bindings must be an integer 0..${MAX_BINDINGS_SHOWN} (got ${String(n).slice(0, 20)})` };
}

/**
 * The last `n` entries of an iteration, last first, keeping only `n` at a
 * time (the ledger's order is least recently made first, and it has no
 * reverse iterator: one pass over it, O(n) memory).
 */
function lastOf<T>(items: Iterable<T>, n: number): T[] {
  if (n <= 0) return [];
  const ring: T[] = [];
  let next = 0;
  for (const item of items) {
    if (ring.length < n) ring.push(item);
    else ring[next] = item;
    next = (next + 1) % n;
  }
  // Oldest kept is at `next` once the ring is full, at 0 before.
  const ordered = ring.length < n ? ring : [...ring.slice(next), ...ring.slice(0, next)];
  return ordered.reverse();
}

/** The group's `n` most recent bindings (n <= {@link MAX_BINDINGS_SHOWN}), size histogram and last plan, addresses resolved. */
export function ledgerStatus(group: Group, n: number): LedgerView {
  const addressOf = (memberId: string) => group.members.get(memberId)?.address ?? '';
  const view = ([clientId, b]: [string, Binding]): BindingView => ({
    clientId,
    members: b.members.map((m) => ({ memberId: m.memberId, address: addressOf(m.memberId), permille: Math.round(m.share * 1000) })),
    sinceUnixMs: b.sinceMs,
    via: b.via,
  });
  const plan = group.lastPlan;
  return {
    bindings: lastOf(group.ledger.entries(), Math.min(n, MAX_BINDINGS_SHOWN)).map(view),
    bindingCount: group.ledger.bindingCount,
    bindingSizes: group.ledger.sizeHistogram(),
    lastPlan:
      plan === null
        ? null
        : {
            atUnixMs: plan.atMs,
            moveCount: plan.moves.length,
            moves: plan.moves.slice(0, MAX_PLAN_MOVES_SHOWN).map((m) => ({
              clientId: m.clientId,
              fromMemberId: m.from,
              fromAddress: addressOf(m.from),
              toMemberId: m.to,
              toAddress: addressOf(m.to),
              load: m.load,
            })),
            dispersionBefore: plan.dispersionBefore,
            dispersionAfter: plan.dispersionAfter,
          },
  };
}

/** A group's run-time settings as stored for every balancer (HA: in etcd). */
export interface RuntimeSettings {
  strategy?: { name: string; params: Record<string, number> };
  granularity?: string;
}

/**
 * Where run-time changes are stored with several balancers (HA: etcd). Every
 * balancer applies what is stored (applyRuntime); a change is only in force
 * once it is stored.
 */
export interface RuntimeConfigStore {
  /** Stores `change` (merged over what is stored, or over `current` when nothing is). Rejects when the store is unreachable. */
  write(group: string, change: RuntimeSettings, current: RuntimeSettings): Promise<unknown>;
}

export class Admin {
  /** With HA: changes go through this store (etcd) and reach every balancer from there; null: changes are local. */
  runtime: RuntimeConfigStore | null = null;
  /** With HA: the balancers, leader per group and etcd health that ListGroups answers with; null without HA. */
  haStatus: (() => HaStatus) | null = null;

  constructor(
    private readonly registry: Registry,
    private readonly analyzer: Analyzer,
    private readonly log: Logger,
    /** Told of every change made (the dashboard's decision feed). */
    private readonly onChange: (kind: 'strategy' | 'granularity', group: string, text: string) => void = () => undefined,
  ) {}

  /** A group's status, with its `bindings` most recent bindings (at most {@link MAX_BINDINGS_SHOWN}). */
  groupStatus(group: Group, bindings = 0): GroupStatus {
    const methods = new Map<string, Method__Output['kind']>();
    for (const m of group.members.values()) for (const method of m.methods) methods.set(method.path, method.kind);
    return {
      name: group.name,
      granularity: group.granularity,
      strategy: group.strategyName,
      strategyParamsJson: JSON.stringify(group.config.strategy.params),
      metric: group.config.metric,
      members: [...group.members.values()].map((m) => ({
        memberId: m.id,
        address: m.address,
        state: m.state,
        rawLoad: m.rawLoad,
        dampenedLoad: m.load,
        clients: m.clients.size,
        reports: m.reports,
        lastReportUnixMs: m.reported ? m.lastReportAtMs : 0,
        callsPerS: m.latest?.callsPerS ?? 0,
        inFlight: m.latest?.inFlight ?? 0,
      })),
      methods: [...methods].map(([path, kind]) => ({ path, kind })),
      forwards: group.counters.forwards,
      proxiedCalls: group.counters.proxiedCalls,
      advisories: group.counters.advisories,
      ...ledgerStatus(group, bindings),
    };
  }

  private find(name: string): Group | Refusal {
    const group = this.registry.groups.get(name);
    if (group !== undefined) return group;
    const known = [...this.registry.groups.keys()].join(', ') || 'none';
    return { code: Status.NOT_FOUND, message: `group "${name.slice(0, 200)}" does not exist (groups: ${known})` };
  }

  /** Every group, or the one named, each with its `bindings` most recent bindings (0..{@link MAX_BINDINGS_SHOWN}). */
  listGroups(name: string, bindings = 0): GroupStatus[] | Refusal {
    const n = parseBindingsShown(bindings);
    if (isRefusal(n)) return n;
    if (name === '') return [...this.registry.groups.values()].map((g) => this.groupStatus(g, n));
    const group = this.find(name);
    return isRefusal(group) ? group : [this.groupStatus(group, n)];
  }

  /** Checks a strategy change; the group, strategy name and parsed parameters, or a refusal. */
  private checkStrategy(groupName: string, strategy: string, paramsJson: string): { group: Group; name: string; params: Record<string, number> } | Refusal {
    const group = this.find(groupName);
    if (isRefusal(group)) return group;
    const factory = strategyFactory(strategy);
    if (factory === undefined) {
      return { code: Status.INVALID_ARGUMENT, message: `strategy "${strategy.slice(0, 100)}" is unknown; accepted: ${strategyNames().join(', ')}` };
    }
    let raw: unknown = undefined;
    if (paramsJson.trim() !== '') {
      try {
        raw = JSON.parse(paramsJson);
      } catch (err) {
        return { code: Status.INVALID_ARGUMENT, message: `params_json is not valid JSON: ${(err as Error).message}` };
      }
    }
    const parsed = parseParams(factory, raw as Record<string, unknown> | undefined, 'params');
    if (!parsed.ok) return { code: Status.INVALID_ARGUMENT, message: parsed.errors.join('; ') };
    return { group, name: factory.name, params: parsed.params };
  }

  /** Changes a group's strategy in this balancer at once (without HA, what every change does). */
  setStrategy(groupName: string, strategy: string, paramsJson: string): GroupStatus | Refusal {
    const checked = this.checkStrategy(groupName, strategy, paramsJson);
    if (isRefusal(checked)) return checked;
    this.applyStrategy(checked.group, checked.name, checked.params);
    return this.groupStatus(checked.group);
  }

  private applyStrategy(group: Group, name: string, params: Record<string, number>, by = ''): void {
    const before = `${group.strategyName} ${JSON.stringify(group.config.strategy.params)}`;
    group.setStrategy(name, params);
    const text = `strategy ${before} -> ${name} ${JSON.stringify(params)}${by}`;
    this.log.info({ group: group.name, from: before, to: name, params }, `group ${group.name}: ${text}`);
    this.onChange('strategy', group.name, text);
  }

  private checkGranularity(groupName: string, granularity: string): { group: Group; granularity: Granularity } | Refusal {
    const group = this.find(groupName);
    if (isRefusal(group)) return group;
    if (!(GRANULARITIES as readonly string[]).includes(granularity)) {
      return { code: Status.INVALID_ARGUMENT, message: `granularity "${granularity.slice(0, 100)}" is unknown; accepted: ${GRANULARITIES.join(', ')}` };
    }
    return { group, granularity: granularity as Granularity };
  }

  /** Changes a group's granularity in this balancer at once (without HA, what every change does). */
  setGranularity(groupName: string, granularity: string): GroupStatus | Refusal {
    const checked = this.checkGranularity(groupName, granularity);
    if (isRefusal(checked)) return checked;
    this.applyGranularity(checked.group, checked.granularity);
    return this.groupStatus(checked.group);
  }

  private applyGranularity(group: Group, next: Granularity, by = ''): void {
    const before = group.granularity;
    if (before === next) return;
    group.setGranularity(next);
    // Direct clients must come back through the balancer in per-request mode.
    if (next === 'per-request') this.analyzer.sendRecall(group, true);
    else if (before === 'per-request') this.analyzer.sendRecall(group, false);
    this.log.info({ group: group.name, from: before, to: next }, `group ${group.name}: granularity ${before} -> ${next}${by}`);
    this.onChange('granularity', group.name, `granularity ${before} -> ${next}${by}`);
  }

  /**
   * A strategy change as the Admin API and the dashboard make it: checked,
   * then stored for every balancer when there is a run-time store (HA), else
   * applied here. UNAVAILABLE when the store cannot be reached (nothing changes).
   */
  async changeStrategy(groupName: string, strategy: string, paramsJson: string): Promise<GroupStatus | Refusal> {
    const checked = this.checkStrategy(groupName, strategy, paramsJson);
    if (isRefusal(checked)) return checked;
    if (this.runtime === null) return this.setStrategy(groupName, strategy, paramsJson);
    const refused = await this.store(checked.group, { strategy: { name: checked.name, params: checked.params } });
    return refused ?? this.groupStatus(checked.group);
  }

  /** A granularity change as the Admin API and the dashboard make it (see changeStrategy). */
  async changeGranularity(groupName: string, granularity: string): Promise<GroupStatus | Refusal> {
    const checked = this.checkGranularity(groupName, granularity);
    if (isRefusal(checked)) return checked;
    if (this.runtime === null) return this.setGranularity(groupName, granularity);
    const refused = await this.store(checked.group, { granularity: checked.granularity });
    return refused ?? this.groupStatus(checked.group);
  }

  /** Writes a change to the run-time store and applies it here; a refusal when the store cannot be reached. */
  private async store(group: Group, change: RuntimeSettings): Promise<Refusal | null> {
    if (this.runtime === null) throw new Error('no run-time store');
    try {
      await this.runtime.write(group.name, change, { strategy: { name: group.strategyName, params: { ...group.config.strategy.params } }, granularity: group.granularity });
    } catch (err) {
      return {
        code: Status.UNAVAILABLE,
        message: `etcd is unreachable: run-time changes are stored in etcd so that every balancer applies them, and this one could not be stored; nothing changed (${String((err as Error).message ?? err).slice(0, 200)})`,
      };
    }
    // The writer applies it now (the answer shows it); the watch brings the same value again, a no-op.
    this.applyRuntime(group.name, change, '');
    return null;
  }

  /**
   * Applies a group's stored run-time settings (HA: from etcd, at start and
   * on every change): checked like the configuration file, applied when they
   * differ from what runs. Invalid stored settings are logged and ignored.
   */
  applyRuntime(groupName: string, settings: RuntimeSettings, by: string): boolean {
    const group = this.registry.groups.get(groupName);
    if (group === undefined) return false;
    const errors: string[] = [];
    const raw: Record<string, unknown> = {};
    if (settings.strategy !== undefined) raw['strategy'] = settings.strategy;
    if (settings.granularity !== undefined) raw['granularity'] = settings.granularity;
    const parsed = parseGroupSettings(raw, { ...group.config, granularity: group.granularity }, `etcd config/groups/${groupName}`, errors, false);
    if (errors.length > 0) {
      this.log.warn({ group: groupName, errors }, `group ${groupName}: ignored the run-time configuration stored in etcd: ${errors.join('; ')}`);
      return false;
    }
    const suffix = by === '' ? '' : ` (by ${by})`;
    let changed = false;
    if (settings.strategy !== undefined && (parsed.strategy.name !== group.strategyName || JSON.stringify(parsed.strategy.params) !== JSON.stringify(group.config.strategy.params))) {
      this.applyStrategy(group, parsed.strategy.name, parsed.strategy.params, suffix);
      changed = true;
    }
    if (settings.granularity !== undefined && parsed.granularity !== group.granularity) {
      this.applyGranularity(group, parsed.granularity, suffix);
      changed = true;
    }
    return changed;
  }
}

type Callback<T> = (error: { code: Status; details: string } | null, value?: T) => void;

function answer<T>(result: T | Refusal, callback: Callback<T>): void {
  if (isRefusal(result)) callback({ code: result.code, details: result.message });
  else callback(null, result);
}

/** The Admin gRPC service over an {@link Admin}. */
export function adminHandlers(admin: Admin): AdminHandlers {
  return {
    ListGroups: (call, callback) => {
      const result = admin.listGroups(call.request.group, call.request.bindings);
      answer(Array.isArray(result) ? { groups: result, ...(admin.haStatus !== null ? { ha: admin.haStatus() } : {}) } : result, callback);
    },
    SetStrategy: (call, callback) => void admin.changeStrategy(call.request.group, call.request.strategy, call.request.paramsJson).then((result) => answer(result, callback)),
    SetGranularity: (call, callback) => void admin.changeGranularity(call.request.group, call.request.granularity).then((result) => answer(result, callback)),
  };
}
