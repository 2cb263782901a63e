/**
 * Open-loop load for integration tests: each client sends on a fixed
 * schedule, whether or not earlier replies have come back, and records
 * where each call was served and whether it failed.
 */
import * as grpc from '@grpc/grpc-js';
import type { EchoClient } from './echo';

export interface LoadClient {
  stub: EchoClient;
  ratePerS: number;
  sent: number;
  ok: number;
  failed: number;
  errors: string[];
  /** Calls served per replica name. */
  servedBy: Map<string, number>;
  stop(): Promise<void>;
}

/** Starts sending `ratePerS` unary calls per second on `stub`. */
export function openLoop(stub: EchoClient, ratePerS: number, text = 'load'): LoadClient {
  const period = 1000 / ratePerS;
  const pending = new Set<Promise<void>>();
  const client: LoadClient = {
    stub,
    ratePerS,
    sent: 0,
    ok: 0,
    failed: 0,
    errors: [],
    servedBy: new Map(),
    stop: async () => {
      running = false;
      clearTimeout(timer);
      await Promise.all([...pending]);
    },
  };
  let running = true;
  const start = Date.now();
  let timer: NodeJS.Timeout;
  const tick = () => {
    if (!running) return;
    // Catch up if the event loop fell behind, so the rate stays what was asked.
    const due = Math.floor((Date.now() - start) / period) + 1;
    while (client.sent < due) {
      client.sent++;
      const p = new Promise<void>((resolve) => {
        stub.unary({ text }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, reply) => {
          if (err) {
            client.failed++;
            if (client.errors.length < 10) client.errors.push(`${grpc.status[err.code]}: ${err.details}`);
          } else {
            client.ok++;
            client.servedBy.set(reply!.servedBy, (client.servedBy.get(reply!.servedBy) ?? 0) + 1);
          }
          resolve();
        });
      });
      pending.add(p);
      void p.then(() => pending.delete(p));
    }
    timer = setTimeout(tick, Math.max(1, start + client.sent * period - Date.now()));
  };
  tick();
  return client;
}

/** Calls served per replica between two snapshots of the replicas' counters, as calls/s. */
export function rates(before: Map<string, number>, after: Map<string, number>, seconds: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, n] of after) out.set(name, (n - (before.get(name) ?? 0)) / seconds);
  return out;
}
