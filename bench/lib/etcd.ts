/**
 * A real etcd (Debian's etcd-server) on loopback for the HA tests and
 * benchmarks: its own temporary data directory, free ports, and a fast
 * heartbeat (50 ms, election timeout 500 ms) so that its minimum lease TTL
 * is 1 s. It can be SIGKILLed and started again on the same ports and data
 * directory (etcd comes back with its keys; leases granted before the kill
 * expire as usual). Installed by test/support/install-etcd.sh; when it
 * cannot be, `ensureEtcd` says why.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../../src/common/proto';
import { freePort } from './common';
import { track, type Tracked } from './processes';

function run(file: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: 300_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}`.trim() });
    });
  });
}

/** Finds etcd, installing it with test/support/install-etcd.sh if needed; a string is the reason it is unavailable. */
export async function ensureEtcd(): Promise<{ version: string } | string> {
  let version = await run('etcd', ['--version']);
  if (version.code !== 0) {
    const install = await run('bash', [path.join(packageRoot(), 'test/support/install-etcd.sh')]);
    if (install.code !== 0) return `etcd is not installed and test/support/install-etcd.sh failed: ${install.output.split('\n').slice(-2).join(' ')}`;
    version = await run('etcd', ['--version']);
    if (version.code !== 0) return `etcd still not runnable after install: ${version.output}`;
  }
  return { version: version.output.split('\n')[0]!.replace(/^etcd Version: /, '') };
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port, or rejects after `timeoutMs`. */
async function waitForPort(port: number, timeoutMs: number, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited()) throw new Error('etcd exited before it accepted connections');
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`etcd did not accept connections on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export class EtcdProcess {
  private child: ChildProcess | null = null;
  private tracked: Tracked | null = null;
  private constructor(
    readonly dataDir: string,
    readonly clientPort: number,
    readonly peerPort: number,
  ) {}

  /** The client URL, e.g. http://127.0.0.1:23790. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts a fresh etcd (new data directory, free ports) and waits until it serves. */
  static async start(): Promise<EtcdProcess> {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'rebind-etcd-'));
    const etcd = new EtcdProcess(dataDir, await freePort(), await freePort());
    await etcd.restart();
    return etcd;
  }

  /** Starts etcd again on the same ports and data directory (after kill()). */
  async restart(): Promise<void> {
    if (this.running) return;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const child = spawn(
      'etcd',
      [
        '--name', 'rebind-test',
        '--data-dir', path.join(this.dataDir, 'data'),
        '--listen-client-urls', this.endpoint,
        '--advertise-client-urls', this.endpoint,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `rebind-test=${peer}`,
        '--heartbeat-interval', '50',
        '--election-timeout', '500',
        '--log-level', 'error',
        '--logger', 'zap',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    });
    this.child = child;
    this.tracked = track(child);
    try {
      await waitForPort(this.clientPort, 15_000, () => child.exitCode !== null || child.signalCode !== null);
      await this.waitHealthy(15_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}; etcd said: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
    }
  }

  /** Waits until etcd answers /health with {"health":"true"} (it has a leader: it can serve writes). */
  private async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const res = await fetch(`${this.endpoint}/health`);
        const body = (await res.json()) as { health?: string };
        if (body.health === 'true') return;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error(`etcd at ${this.endpoint} not healthy within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** SIGKILLs etcd (its data directory stays for restart()). */
  async kill(): Promise<void> {
    await this.tracked?.stop('SIGKILL');
    this.child = null;
  }

  /** Stops etcd and removes its data directory. */
  async stop(): Promise<void> {
    await this.tracked?.stop('SIGTERM');
    this.child = null;
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
