/**
 * ORCA out-of-band load reports (gRFC A51) from a rebind replica, so that
 * standard gRPC clients can balance over rebind replicas too: grpc-js's
 * `weighted_round_robin` policy (gRFC A58) with enable_oob_load_report
 * subscribes to OpenRcaService.StreamCoreMetrics on each backend and weighs
 * it by rps_fractional / application_utilization.
 *
 * Each stream reports at the interval the client asks for (at least
 * MIN_ORCA_INTERVAL_MS): calls/s, errors/s, event-loop utilization as the
 * application utilization, and process CPU as a fraction of the machine's
 * cores. Reports are serialized by the service's own message type, loaded
 * once; nothing is done per call (grpc-js 1.14's per-call metric recorder
 * re-parses the ORCA .proto on every call, see ARCHITECTURE.md).
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { interval, type SchedulerLike } from 'rxjs';
import { packageRoot } from '../common/proto';
import type { LoadMeter } from './load-meter';

export const ORCA_SERVICE_PATH = '/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics';
/** Shortest reporting interval a client may ask for, ms. */
export const MIN_ORCA_INTERVAL_MS = 100;
/** Interval used when the client asks for none, ms. */
export const DEFAULT_ORCA_INTERVAL_MS = 1000;

let definition: grpc.ServiceDefinition | null = null;

/** The OpenRcaService definition (loaded once). */
export function orcaServiceDefinition(): grpc.ServiceDefinition {
  if (definition === null) {
    const packageDefinition = protoLoader.loadSync(path.join(packageRoot(), 'proto/xds/orca.proto'), {
      keepCase: true,
      longs: Number,
      defaults: true,
    });
    const loaded = grpc.loadPackageDefinition(packageDefinition) as unknown as {
      xds: { service: { orca: { v3: { OpenRcaService: grpc.ServiceClientConstructor } } } };
    };
    definition = loaded.xds.service.orca.v3.OpenRcaService.service;
  }
  return definition;
}

interface OrcaRequest {
  report_interval?: { seconds?: number; nanos?: number } | null;
}

/** The StreamCoreMetrics handler over a replica's meter. */
export function orcaHandlers(meter: LoadMeter, scheduler?: SchedulerLike): grpc.UntypedServiceImplementation {
  const cores = availableParallelism();
  return {
    StreamCoreMetrics(call: grpc.ServerWritableStream<OrcaRequest, unknown>) {
      const asked = call.request.report_interval;
      const askedMs = asked ? (asked.seconds ?? 0) * 1000 + (asked.nanos ?? 0) / 1e6 : 0;
      const everyMs = Math.max(MIN_ORCA_INTERVAL_MS, askedMs > 0 ? askedMs : DEFAULT_ORCA_INTERVAL_MS);
      let calls = meter.totalCalls;
      let errors = meter.totalErrors;
      let elu = performance.eventLoopUtilization();
      let cpu = process.cpuUsage();
      let at = performance.now();
      const report = () => {
        const now = performance.now();
        const seconds = Math.max(1e-3, (now - at) / 1000);
        const eluNow = performance.eventLoopUtilization(elu);
        const cpuNow = process.cpuUsage(cpu);
        const message = {
          rps_fractional: (meter.totalCalls - calls) / seconds,
          eps: (meter.totalErrors - errors) / seconds,
          application_utilization: Math.min(1, Math.max(0, eluNow.utilization)),
          cpu_utilization: (cpuNow.user + cpuNow.system) / 1e6 / seconds / cores,
        };
        calls = meter.totalCalls;
        errors = meter.totalErrors;
        elu = performance.eventLoopUtilization();
        cpu = process.cpuUsage();
        at = now;
        return message;
      };
      const subscription = interval(everyMs, scheduler).subscribe(() => {
        if (!call.cancelled) call.write(report());
      });
      call.on('cancelled', () => subscription.unsubscribe());
      call.on('close', () => subscription.unsubscribe());
    },
  };
}
