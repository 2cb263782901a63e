/** What every benchmark worker does: parse its flags, answer requests, die with its parent. */
import type { WorkerMessage } from '../lib/processes';

export function flag(name: string, fallback?: string): string {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? process.argv[index + 1] : fallback;
  if (value === undefined) throw new Error(`missing --${name}`);
  return value;
}

export function send(message: WorkerMessage): void {
  process.send?.(message);
}

/** Handles requests from the orchestrator; exits when it goes away. */
export function serve(handler: (m: WorkerMessage) => Promise<Record<string, unknown>> | Record<string, unknown>): void {
  process.on('message', (m: WorkerMessage) => {
    Promise.resolve()
      .then(() => handler(m))
      .then(
        (reply) => send({ ...reply, id: m.id, type: `${m.type}-done` }),
        (err: Error) => send({ id: m.id, type: 'error', error: err.message }),
      );
  });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}

/**
 * Answers the memory benchmarks' requests: `stats` (process.memoryUsage(),
 * process.cpuUsage(), plus what `extra` returns) and `gc` (a full collection,
 * twice: weak references, then what they held; needs --expose-gc).
 */
export function serveMeasured(extra: () => Record<string, unknown>): void {
  serve((m) => {
    if (m.type === 'stats') return { memory: process.memoryUsage(), cpu: process.cpuUsage(), ...extra() };
    if (m.type === 'gc') {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (gc === undefined) throw new Error('run with --expose-gc');
      gc();
      gc();
      return {};
    }
    throw new Error(`unknown request ${m.type}`);
  });
}

export function fatal(err: unknown): never {
  process.stderr.write(`${process.argv[1] ? require('node:path').basename(process.argv[1]) : 'worker'}: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  send({ type: 'fatal', error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}
