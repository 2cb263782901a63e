/**
 * Benchmark processes: workers forked with an IPC channel (they exit when
 * it closes, so a dead orchestrator leaves none behind) and the rebind CLI
 * balancer. Requests to a worker are messages; replies carry the id.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import { say } from './common';

export interface WorkerMessage {
  id?: number;
  type: string;
  [key: string]: unknown;
}

const running = new Set<ChildProcess>();

/**
 * Log level of benchmark workers and balancers: errors only, so that the
 * expected warnings of a fault scenario (re-attaching, members removed) do
 * not bury the results; REBIND_BENCH_LOG_LEVEL overrides.
 */
export const BENCH_LOG_LEVEL = process.env['REBIND_BENCH_LOG_LEVEL'] ?? 'error';

/** Kills every process still running (on exit or interruption). */
export function killAll(): void {
  for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
}
process.on('exit', killAll);

export interface Tracked {
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  /** Sends `signal`, then SIGKILL after `killAfterMs` (5 s), and waits for the exit. */
  stop(signal?: NodeJS.Signals, killAfterMs?: number): Promise<void>;
}

/** Keeps `child` in the set killAll() kills until it exits. */
export function track(child: ChildProcess): Tracked {
  running.add(child);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  return {
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', killAfterMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

export class Worker {
  private nextId = 1;
  private readonly pending = new Map<number, (m: WorkerMessage) => void>();
  readonly events: WorkerMessage[] = [];
  onEvent: ((m: WorkerMessage) => void) | null = null;
  readonly exited: Promise<number | null>;
  private readonly tracked: Tracked;

  /** How requests reach the process: its IPC channel (Node workers) or a line of JSON on its stdin (other languages). */
  private readonly post: (m: WorkerMessage) => void;

  private constructor(readonly name: string, readonly process: ChildProcess) {
    this.tracked = track(process);
    const receive = (m: WorkerMessage) => {
      if (m.id !== undefined && this.pending.has(m.id)) {
        const resolve = this.pending.get(m.id)!;
        this.pending.delete(m.id);
        resolve(m);
      } else {
        this.events.push(m);
        this.onEvent?.(m);
      }
    };
    if (process.send !== undefined && process.connected) {
      process.on('message', receive);
      this.post = (m) => process.send!(m);
    } else {
      // Line-delimited JSON over stdio: one message per line each way.
      createInterface({ input: process.stdout! }).on('line', (line) => {
        let m: WorkerMessage;
        try {
          m = JSON.parse(line) as WorkerMessage;
        } catch {
          say(`${name}: not a JSON line: ${line.slice(0, 200)}`);
          return;
        }
        process.emit('message', m);
        receive(m);
      });
      process.stdin!.on('error', () => undefined);
      this.post = (m) => void process.stdin!.write(`${JSON.stringify(m)}\n`);
    }
    this.exited = this.tracked.exited;
    process.once('exit', (code) => {
      for (const [, r] of this.pending) r({ type: 'error', error: `${name} exited (code ${code})` });
      this.pending.clear();
    });
  }

  /**
   * Forks a worker script (compiled JS beside this file) and waits for its
   * `ready` message. `execArgv`: extra node flags (e.g. --expose-gc).
   */
  static async start(name: string, script: string, args: string[], env: Record<string, string> = {}, execArgv: string[] = []): Promise<{ worker: Worker; ready: WorkerMessage }> {
    const child = fork(path.join(__dirname, '../workers', script), args, {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: [...process.execArgv, ...execArgv],
      env: { ...process.env, REBIND_LOG_LEVEL: BENCH_LOG_LEVEL, ...env },
    });
    return Worker.whenReady(name, child);
  }

  /**
   * Runs a worker in another language (`command args`, e.g. /usr/bin/python3
   * bench/workers/prime_client.py) that speaks the same protocol as
   * line-delimited JSON on its stdin and stdout (it must exit when its stdin
   * closes), and waits for its `ready` message. `env` replaces nothing of
   * this process's environment but the keys it names; a key set to '' is removed.
   */
  static async startProcess(name: string, command: string, args: string[], env: Record<string, string> = {}): Promise<{ worker: Worker; ready: WorkerMessage }> {
    const merged: NodeJS.ProcessEnv = { ...process.env, ...env };
    for (const [k, v] of Object.entries(env)) if (v === '') delete merged[k];
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'], env: merged });
    return Worker.whenReady(name, child);
  }

  private static async whenReady(name: string, child: ChildProcess): Promise<{ worker: Worker; ready: WorkerMessage }> {
    const worker = new Worker(name, child);
    const ready = await new Promise<WorkerMessage>((resolve, reject) => {
      const onMessage = (m: WorkerMessage) => {
        if (m.type === 'ready') {
          child.off('message', onMessage);
          resolve(m);
        } else if (m.type === 'fatal') {
          reject(new Error(`${name}: ${String(m.error)}`));
        }
      };
      child.on('message', onMessage);
      void worker.exited.then((code) => reject(new Error(`${name} exited (code ${code}) before it was ready`)));
    });
    return { worker, ready };
  }

  request(message: WorkerMessage): Promise<WorkerMessage> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.post({ ...message, id });
    });
  }

  stop(): Promise<void> {
    return this.tracked.stop();
  }
}

export interface BalancerProcess {
  data: string;
  control: string;
  /** The admin HTTP port's base URL (http://host:port/), when the configuration opens one. */
  admin?: string;
  process: ChildProcess;
  pid: number;
  /** SIGTERM (the balancer's graceful stop, which lets `node --cpu-prof` write its profile), SIGKILL after `killAfterMs` (5 s). */
  stop(killAfterMs?: number): Promise<void>;
}

/** Where a benchmark's balancer comes from and how node runs it. */
export interface BalancerLaunch {
  /** The CLI entry (compiled main.js) to run: another build (e.g. the code before a change) for A/B runs; default this build's. */
  cli?: string;
  /** Extra node flags for the balancer process (e.g. --cpu-prof --cpu-prof-dir=DIR). */
  execArgv?: string[];
}

/** Runs the rebind CLI balancer with a configuration file. */
export function startBalancerProcess(configFile: string, logLevel = BENCH_LOG_LEVEL, launch: BalancerLaunch = {}): Promise<BalancerProcess> {
  const cli = launch.cli ?? path.join(__dirname, '../../src/cli/main.js');
  const child = spawn(process.execPath, [...(launch.execArgv ?? []), cli, 'balancer', '--config', configFile, '--exit-with-parent'], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, REBIND_LOG_LEVEL: logLevel },
  });
  const tracked = track(child);
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^balancer listening: data (\S+), control ([^\s,]+)(?:, admin (\S+))?$/.exec(line);
      if (m !== null) {
        resolve({
          data: m[1]!,
          control: m[2]!,
          ...(m[3] !== undefined ? { admin: m[3] } : {}),
          process: child,
          pid: child.pid!,
          stop: (killAfterMs?: number) => tracked.stop('SIGTERM', killAfterMs),
        });
      }
    });
    void tracked.exited.then(() => reject(new Error('balancer exited before it was ready')));
  });
}

/**
 * Runs a benchmark's command line: parses argv, calls `main` with the
 * options, exits 0 when it resolves and 1 (with its message, every worker
 * killed) when it throws; Ctrl-C kills the workers too.
 */
export function runBenchCommand<O>(program: Command, main: (opts: O) => Promise<void>): void {
  program.action(async (opts: O) => {
    try {
      await main(opts);
      process.exit(0);
    } catch (err) {
      say(`${program.name()} failed: ${(err as Error).message}`);
      killAll();
      process.exit(1);
    }
  });
  process.on('SIGINT', () => {
    killAll();
    process.exit(130);
  });
  void program.parseAsync(process.argv);
}

/** Where taskset is expected (util-linux). */
export const TASKSET = '/usr/bin/taskset';

/**
 * Why processes cannot be pinned to cores here (null: they can): taskset
 * missing, or fewer than 2 cores (one for the measured process, one for its
 * load generators).
 */
export function pinningUnavailable(): string | null {
  if (!existsSync(TASKSET)) return `${TASKSET} not found`;
  if (cpus().length < 2) return `only ${cpus().length} core`;
  return null;
}

/** Pins every thread of process `pid` (and the threads it starts later) to core `cpu`. */
export function pinToCpu(pid: number, cpu: number): void {
  execFileSync(TASKSET, ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}
