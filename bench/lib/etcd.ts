/**
 * A real etcd (Debian's etcd-server) on loopback for the HA tests and
 * benchmarks: its own temporary data directory, free ports, and a fast
 * heartbeat (50 ms, election timeout 500 ms) so that its minimum lease TTL
 * is 1 s. It can be SIGKILLed and started again on the same ports and data
 * directory (etcd comes back with its keys; leases granted before the kill
 * expire as usual). Installed by test/support/install-etcd.sh; when it
 * cannot be, `ensureEtcd` says why.
 *
 * Optionally secured like a production etcd: client TLS (an https client URL,
 * its server certificate, and client certificates required when
 * `clientCertAuth`), and/or authentication (a root user and balancer users
 * each limited to a key prefix, then `auth enable`), set up through etcd's
 * v3 HTTP gateway before any client connects.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
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

/** Certificates for an etcd serving client TLS (test/support/tls.ts makePki returns these fields). */
export interface EtcdTlsFiles {
  /** CA that signs the server certificate and the client certificates etcd accepts. */
  caFile: string;
  /** etcd's certificate (for 127.0.0.1) and key. */
  serverCertFile: string;
  serverKeyFile: string;
  /** A client certificate signed by caFile: used by this harness itself when etcd requires client certificates. */
  clientCertFile: string;
  clientKeyFile: string;
}

/** An etcd user limited to one key prefix (read and write). */
export interface EtcdUser {
  name: string;
  password: string;
  /** Keys the user may read and write: everything starting with this. */
  prefix: string;
}

export interface EtcdStartOptions {
  /** Serve clients over TLS (https client URL) with these certificates. */
  tls?: EtcdTlsFiles;
  /** With tls: refuse clients without a certificate signed by tls.caFile (etcd --client-cert-auth). Default true. */
  clientCertAuth?: boolean;
  /** Enable authentication: user root with this password, the users listed (each with a role on its prefix), then `auth enable`. */
  auth?: { rootPassword: string; users?: EtcdUser[] };
}

export class EtcdProcess {
  private child: ChildProcess | null = null;
  private tracked: Tracked | null = null;
  private constructor(
    readonly dataDir: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly options: EtcdStartOptions = {},
  ) {}

  /** The client URL, e.g. http://127.0.0.1:23790 (https://… with options.tls). */
  get endpoint(): string {
    return `${this.options.tls !== undefined ? 'https' : 'http'}://127.0.0.1:${this.clientPort}`;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts a fresh etcd (new data directory, free ports) and waits until it serves. */
  static async start(options: EtcdStartOptions = {}): Promise<EtcdProcess> {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'rebind-etcd-'));
    const etcd = new EtcdProcess(dataDir, await freePort(), await freePort(), options);
    await etcd.restart();
    if (options.auth !== undefined) {
      try {
        await etcd.enableAuth(options.auth.rootPassword, options.auth.users ?? []);
      } catch (err) {
        await etcd.stop();
        throw err;
      }
    }
    return etcd;
  }

  /**
   * What `etcdctl user add root; role add root; user grant-role root root;
   * role add <u>; role grant-permission --prefix <u> readwrite <prefix>;
   * user add <u>; user grant-role <u> <u>; auth enable` do, over the v3 HTTP
   * gateway (no token is needed before auth is enabled; auth survives restarts).
   */
  private async enableAuth(rootPassword: string, users: EtcdUser[]): Promise<void> {
    const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
    await this.gateway('/v3/auth/user/add', { name: 'root', password: rootPassword });
    await this.gateway('/v3/auth/role/add', { name: 'root' });
    await this.gateway('/v3/auth/user/grant', { user: 'root', role: 'root' });
    for (const user of users) {
      await this.gateway('/v3/auth/role/add', { name: user.name });
      await this.gateway('/v3/auth/role/grant', { name: user.name, perm: { permType: 'READWRITE', key: b64(user.prefix), range_end: prefixEnd(user.prefix) } });
      await this.gateway('/v3/auth/user/add', { name: user.name, password: user.password });
      await this.gateway('/v3/auth/user/grant', { user: user.name, role: user.name });
    }
    await this.gateway('/v3/auth/enable', {});
  }

  /** A POST to etcd's v3 HTTP gateway (over TLS, with the client certificate, when etcd serves TLS); rejects unless 200. */
  private gateway(urlPath: string, body: unknown): Promise<unknown> {
    return this.http('POST', urlPath, JSON.stringify(body)).then(({ status, text }) => {
      if (status !== 200) throw new Error(`etcd ${urlPath} answered ${status}: ${text.slice(0, 300)}`);
      return JSON.parse(text) as unknown;
    });
  }

  private http(method: string, urlPath: string, body?: string): Promise<{ status: number; text: string }> {
    const tls = this.options.tls;
    return new Promise((resolve, reject) => {
      const options = { method, host: '127.0.0.1', port: this.clientPort, path: urlPath, timeout: 5000, headers: { 'content-type': 'application/json' } };
      const req =
        tls !== undefined
          ? httpsRequest({ ...options, ca: readFileSync(tls.caFile), cert: readFileSync(tls.clientCertFile), key: readFileSync(tls.clientKeyFile) })
          : httpRequest(options);
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`etcd ${urlPath}: no answer within 5000 ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Starts etcd again on the same ports and data directory (after kill()). */
  async restart(): Promise<void> {
    if (this.running) return;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const tls = this.options.tls;
    const tlsArgs =
      tls === undefined
        ? []
        : ['--cert-file', tls.serverCertFile, '--key-file', tls.serverKeyFile, '--trusted-ca-file', tls.caFile, ...(this.options.clientCertAuth !== false ? ['--client-cert-auth'] : [])];
    const child = spawn(
      'etcd',
      [
        ...tlsArgs,
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
        const res = await this.http('GET', '/health');
        const body = JSON.parse(res.text) as { health?: string };
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

/** The end of the key range of every key starting with `prefix`, base64 (etcd's prefix range_end: the last byte incremented). */
function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, 'utf8');
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      bytes[i]!++;
      return bytes.subarray(0, i + 1).toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64');
}
