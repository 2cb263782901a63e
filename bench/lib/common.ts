/**
 * Shared benchmark plumbing: machine description, histograms, result files,
 * a progress bar on a terminal.
 */
import * as hdr from 'hdr-histogram-js';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import * as path from 'node:path';
import { SingleBar } from 'cli-progress';
import { packageRoot } from '../../src/common/proto';

export interface Machine {
  cpus: number;
  model: string;
  node: string;
}

export function machine(): Machine {
  const list = cpus();
  return { cpus: list.length, model: list[0]?.model.trim() ?? 'unknown', node: process.version };
}

export const RESULTS_DIR = path.join(packageRoot(), 'bench/results');

/** A latency histogram in microseconds (HdrHistogram, 3 significant digits). */
export function histogram(): hdr.Histogram {
  return hdr.build({ autoResize: true, lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

export function encodeHistogram(h: hdr.Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decodeHistogram(encoded: string): hdr.Histogram {
  return hdr.decodeFromCompressedBase64(encoded, 32, false);
}

export interface LatencySummary {
  p50_us: number;
  p90_us: number;
  p99_us: number;
  mean_us: number;
  stddev_us: number;
}

export function summarize(h: hdr.Histogram): LatencySummary {
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    p50_us: h.getValueAtPercentile(50),
    p90_us: h.getValueAtPercentile(90),
    p99_us: h.getValueAtPercentile(99),
    mean_us: r(h.mean),
    stddev_us: r(h.stdDeviation),
  };
}

/** Writes <name>.json, <name>.md and <name>.svg into `dir`. */
export function writeResults(dir: string, name: string, json: unknown, markdown: string, svg: string): string[] {
  mkdirSync(dir, { recursive: true });
  const files = [`${name}.json`, `${name}.md`, `${name}.svg`].map((f) => path.join(dir, f));
  writeFileSync(files[0]!, JSON.stringify(json, null, 2) + '\n');
  writeFileSync(files[1]!, markdown.endsWith('\n') ? markdown : markdown + '\n');
  writeFileSync(files[2]!, svg);
  return files;
}

/** A progress bar on a terminal (stderr), silent otherwise. */
export class Progress {
  private readonly bar: SingleBar | null;
  constructor(title: string, total: number) {
    if (process.stderr.isTTY) {
      this.bar = new SingleBar({ format: `${title} [{bar}] {percentage}% | {value}/{total} | {step}`, stream: process.stderr, hideCursor: true });
      this.bar.start(total, 0, { step: '' });
    } else {
      this.bar = null;
    }
  }
  tick(step: string, by = 1): void {
    this.bar?.increment(by, { step });
  }
  stop(): void {
    this.bar?.stop();
  }
}

/** Logs a line to stderr (so that stdout stays clean for a summary). */
export function say(text: string): void {
  process.stderr.write(`${text}\n`);
}

export function ratio(a: number, b: number): number {
  return Math.round((a / b) * 1000) / 1000;
}

/** A TCP port free on 127.0.0.1 right now (for processes that must re-listen on the same port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU seconds (user + system) another process has used so far (Linux /proc). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}
