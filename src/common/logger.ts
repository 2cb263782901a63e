/**
 * Logging: one pino root, one child logger per module
 * (`logger.child({ module: 'balancer.analyzer' })`). State transitions are
 * logged at info, decisions at debug. The level comes from the
 * REBIND_LOG_LEVEL environment variable (default "info").
 */
import pino, { type Logger } from 'pino';

export type { Logger };

let root: Logger | null = null;

/** The process-wide root logger (created on first use). */
export function rootLogger(): Logger {
  if (root === null) {
    root = pino(
      {
        name: 'rebind',
        level: process.env['REBIND_LOG_LEVEL'] ?? 'info',
        base: { pid: process.pid },
      },
      // Synchronous: pino's default asynchronous stdout registers a flush on
      // process exit, and sonic-boom 4.2's flushSync retries a broken pipe
      // (EPIPE) forever, so a process whose stdout reader died (a parent
      // killed with -9) hung on exit. In sync mode pino turns EPIPE into a
      // no-op. Logs here are state changes and decisions, not per call.
      pino.destination({ dest: 1, sync: true }),
    );
  }
  return root;
}

/** Replaces the root logger (for embedding applications and tests). */
export function setRootLogger(logger: Logger): void {
  root = logger;
}

/** A child logger for one module, under the given parent or the root. */
export function moduleLogger(module: string, parent?: Logger): Logger {
  return (parent ?? rootLogger()).child({ module });
}
