/**
 * Logging: one pino root, one child logger per module
 * (`logger.child({ module: 'balancer.analyzer' })`). State transitions are
 * logged at info, decisions at debug. The level comes from the
 * REBIND_LOG_LEVEL environment variable (default "info"); the format from
 * REBIND_LOG_FORMAT: "pretty" (one coloured line per entry, the default when
 * stdout is a terminal) or "json" (one JSON object per line, the default
 * otherwise: for log collectors).
 */
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

let root: Logger | null = null;

export type LogFormat = 'pretty' | 'json';

/** The log format REBIND_LOG_FORMAT asks for, or the default for this stdout. */
export function logFormat(env: NodeJS.ProcessEnv = process.env, isTTY = process.stdout.isTTY === true): LogFormat {
  const asked = env['REBIND_LOG_FORMAT'];
  if (asked === 'pretty' || asked === 'json') return asked;
  return isTTY ? 'pretty' : 'json';
}

/** The process-wide root logger (created on first use). */
export function rootLogger(): Logger {
  if (root === null) {
    const options = { name: 'rebind', level: process.env['REBIND_LOG_LEVEL'] ?? 'info', base: { pid: process.pid } };
    root =
      logFormat() === 'pretty'
        ? pino(
            options,
            pretty({
              sync: true,
              colorize: process.stdout.isTTY === true,
              translateTime: 'HH:MM:ss.l',
              singleLine: true,
              ignore: 'pid,hostname,name,module',
              messageFormat: '{if module}{module}: {end}{msg}',
              destination: 1,
            }),
          )
        : pino(
            options,
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
