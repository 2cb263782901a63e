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
import type { Registry } from './registry';
import { parseParams } from './strategies/params';
import { strategyFactory, strategyNames } from './strategies/index';
import { isRefusal, type Refusal } from './validate';

export class Admin {
  constructor(
    private readonly registry: Registry,
    private readonly analyzer: Analyzer,
    private readonly log: Logger,
    /** Told of every change made (the dashboard's decision feed). */
    private readonly onChange: (kind: 'strategy' | 'granularity', group: string, text: string) => void = () => undefined,
  ) {}

  groupStatus(group: Group): GroupStatus {
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
    };
  }

  private find(name: string): Group | Refusal {
    const group = this.registry.groups.get(name);
    if (group !== undefined) return group;
    const known = [...this.registry.groups.keys()].join(', ') || 'none';
    return { code: Status.NOT_FOUND, message: `group "${name.slice(0, 200)}" does not exist (groups: ${known})` };
  }

  listGroups(name: string): GroupStatus[] | Refusal {
    if (name === '') return [...this.registry.groups.values()].map((g) => this.groupStatus(g));
    const group = this.find(name);
    return isRefusal(group) ? group : [this.groupStatus(group)];
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
      const result = admin.listGroups(call.request.group);
      answer(Array.isArray(result) ? { groups: result } : result, callback);
    },
    SetStrategy: (call, callback) => answer(admin.setStrategy(call.request.group, call.request.strategy, call.request.paramsJson), callback),
    SetGranularity: (call, callback) => answer(admin.setGranularity(call.request.group, call.request.granularity), callback),
  };
}
