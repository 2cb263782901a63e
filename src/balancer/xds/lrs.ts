/**
 * Load Reporting Service (LRS) for xDS clients: their Cluster names the
 * balancer as the load-reporting server, so each client reports, per
 * interval, the calls it issued to each locality (= member, see
 * resources.ts). xDS clients carry no rebind client id, so replicas cannot
 * attribute their calls (they count them as other calls); LRS is how the
 * planner sees an xDS client's load per member, like any other client's.
 */
import * as grpc from '@grpc/grpc-js';
import { status as Status } from '@grpc/grpc-js';
import type { Logger } from '../../common/logger';
import type { WarnLimiter } from '../../common/warn-limiter';
import type { Registry } from '../registry';
import { nodeIdProblem, xdsClientId } from './ads';
import { memberOfLocality } from './resources';

/** Locality entries accepted in one cluster's stats (more are ignored and counted). */
export const MAX_LOCALITIES_PER_REPORT = 1000;

interface Duration {
  seconds?: string | number;
  nanos?: number;
}

interface LoadStatsRequest {
  node?: { id?: string } | null;
  cluster_stats?: {
    cluster_name?: string;
    upstream_locality_stats?: { locality?: { region?: string; zone?: string; sub_zone?: string } | null; total_issued_requests?: string | number }[];
    load_report_interval?: Duration | null;
  }[];
}

type LrsCall = grpc.ServerDuplexStream<LoadStatsRequest, Record<string, unknown>>;

export interface LrsDeps {
  registry: Registry;
  log: Logger;
  warn: WarnLimiter;
  refused: (reason: string) => void;
  now: () => number;
  admit: (call: grpc.ServerDuplexStream<unknown, unknown>) => boolean;
  /** Report interval asked of clients, ms (the shortest of the groups'). */
  intervalMs: () => number;
  maxStreams: number;
}

function seconds(d: Duration | null | undefined): number {
  if (d === null || d === undefined) return 0;
  return Number(d.seconds ?? 0) + (d.nanos ?? 0) / 1e9;
}

export function lrsHandlers(deps: LrsDeps): { StreamLoadStats: (call: LrsCall) => void } {
  let open = 0;
  return {
    StreamLoadStats: (call) => {
      if (!deps.admit(call as grpc.ServerDuplexStream<unknown, unknown>)) {
        deps.refused('xds_unauthenticated');
        call.emit('error', { code: Status.UNAUTHENTICATED, details: 'rebind: LRS clients must come from loopback or present a client certificate the control port verifies (or set xds.allowUnauthenticated)' });
        return;
      }
      if (open >= deps.maxStreams) {
        deps.refused('xds_stream_limit');
        call.emit('error', { code: Status.RESOURCE_EXHAUSTED, details: `rebind: ${open} LRS streams are open (limit xds.maxStreams=${deps.maxStreams})` });
        return;
      }
      open++;
      let closed = false;
      const close = () => {
        if (!closed) open--;
        closed = true;
      };
      call.on('end', () => (close(), call.end()));
      call.on('error', close);
      call.on('cancelled', close);
      let clientId: string | null = null;
      let nodeId = '';
      call.on('data', (request: LoadStatsRequest) => {
        if (clientId === null) {
          const id = request.node?.id;
          const problem = nodeIdProblem(id);
          if (problem !== null || typeof id !== 'string') {
            deps.refused('xds_bad_node');
            call.emit('error', { code: Status.INVALID_ARGUMENT, details: `rebind: the first LRS request must carry a node id: ${problem}` });
            return;
          }
          nodeId = id;
          clientId = xdsClientId(id);
          // Report every cluster, at the groups' report interval.
          const ms = Math.max(100, deps.intervalMs());
          call.write({ send_all_clusters: true, load_reporting_interval: { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 } });
        }
        const now = deps.now();
        for (const cs of request.cluster_stats ?? []) {
          const group = deps.registry.groups.get(cs.cluster_name ?? '');
          const interval = seconds(cs.load_report_interval);
          if (group === undefined || !(interval > 0)) continue;
          const localities = cs.upstream_locality_stats ?? [];
          if (localities.length > MAX_LOCALITIES_PER_REPORT) {
            deps.refused('xds_lrs_too_many_localities');
            deps.warn.warn('xds_lrs_too_many_localities', { node: nodeId, n: localities.length }, `LRS report of ${nodeId} lists ${localities.length} localities (limit ${MAX_LOCALITIES_PER_REPORT}); the rest are ignored`);
          }
          for (const uls of localities.slice(0, MAX_LOCALITIES_PER_REPORT)) {
            const memberId = memberOfLocality(uls.locality);
            const member = memberId === null ? undefined : group.members.get(memberId);
            const issued = Number(uls.total_issued_requests ?? 0);
            if (member === undefined || !Number.isFinite(issued) || issued < 0) continue;
            group.applyXdsLoad(member, clientId, issued / interval, now);
          }
        }
      });
    },
  };
}
