/**
 * Run-time administration: inspect groups, change a group's strategy or
 * granularity. Used by the Admin gRPC service, the CLI and the dashboard.
 * Changes take effect at the next decision (binding, proxied call or
 * analysis), so within one report interval, and fail no client call.
 */
import { status as Status } from '@grpc/grpc-js';
import type { Logger } from '../common/logger';
import type { GroupStatus } from '../generated/rebind/v1/GroupStatus';
import type { AdminHandlers } from '../generated/rebind/v1/Admin';
import type { Method__Output } from '../generated/rebind/v1/Method';
import type { Analyzer } from './analyzer';
import { GRANULARITIES, type Granularity } from './config';
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

export class Admin {
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

  setStrategy(groupName: string, strategy: string, paramsJson: string): GroupStatus | Refusal {
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
    const before = `${group.strategyName} ${JSON.stringify(group.config.strategy.params)}`;
    group.setStrategy(factory.name, parsed.params);
    const text = `strategy ${before} -> ${factory.name} ${JSON.stringify(parsed.params)}`;
    this.log.info({ group: group.name, from: before, to: factory.name, params: parsed.params }, `group ${group.name}: ${text}`);
    this.onChange('strategy', group.name, text);
    return this.groupStatus(group);
  }

  setGranularity(groupName: string, granularity: string): GroupStatus | Refusal {
    const group = this.find(groupName);
    if (isRefusal(group)) return group;
    if (!(GRANULARITIES as readonly string[]).includes(granularity)) {
      return { code: Status.INVALID_ARGUMENT, message: `granularity "${granularity.slice(0, 100)}" is unknown; accepted: ${GRANULARITIES.join(', ')}` };
    }
    const before = group.granularity;
    const next = granularity as Granularity;
    if (before === next) return this.groupStatus(group);
    group.setGranularity(next);
    // Direct clients must come back through the balancer in per-request mode.
    if (next === 'per-request') this.analyzer.sendRecall(group, true);
    else if (before === 'per-request') this.analyzer.sendRecall(group, false);
    this.log.info({ group: group.name, from: before, to: next }, `group ${group.name}: granularity ${before} -> ${next}`);
    this.onChange('granularity', group.name, `granularity ${before} -> ${next}`);
    return this.groupStatus(group);
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
      answer(Array.isArray(result) ? { groups: result } : result, callback);
    },
    SetStrategy: (call, callback) => answer(admin.setStrategy(call.request.group, call.request.strategy, call.request.paramsJson), callback),
    SetGranularity: (call, callback) => answer(admin.setGranularity(call.request.group, call.request.granularity), callback),
  };
}
