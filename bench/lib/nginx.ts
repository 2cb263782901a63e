/**
 * nginx as a peer: grpc_pass with least_conn in front of the replicas, run
 * in the foreground with its own configuration on loopback. Installed from
 * Debian's package by bench/install-nginx.sh; when it cannot be, the variant
 * is reported as skipped with the reason.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../../src/common/proto';
import { freePort } from './common';
import { track } from './processes';

function run(file: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: 300_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}`.trim() });
    });
  });
}

/** Finds nginx, installing it with bench/install-nginx.sh if needed; a string is the reason it is unavailable. */
export async function ensureNginx(): Promise<{ version: string } | string> {
  let version = await run('nginx', ['-v']);
  if (version.code !== 0) {
    const install = await run('bash', [path.join(packageRoot(), 'bench/install-nginx.sh')]);
    if (install.code !== 0) return `nginx is not installed and bench/install-nginx.sh failed: ${install.output.split('\n').slice(-2).join(' ')}`;
    version = await run('nginx', ['-v']);
    if (version.code !== 0) return `nginx still not runnable after install: ${version.output}`;
  }
  return { version: version.output.replace(/^nginx version: /, '') };
}

export interface NginxProcess {
  address: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts nginx proxying gRPC to `upstreams` with least_conn. */
export async function startNginx(upstreams: string[]): Promise<NginxProcess> {
  const prefix = mkdtempSync(path.join(tmpdir(), 'rebind-nginx-'));
  for (const dir of ['logs', 'tmp']) mkdirSync(path.join(prefix, dir));
  const port = await freePort();
  const conf = path.join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
worker_processes 1;
error_log ${prefix}/logs/error.log warn;
pid ${prefix}/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  upstream replicas {
    least_conn;
${upstreams.map((u) => `    server ${u};`).join('\n')}
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port} http2;
    location / {
      grpc_pass grpc://replicas;
    }
  }
}
`,
  );
  const child = spawn('nginx', ['-p', prefix, '-c', conf], { stdio: 'ignore' });
  const tracked = track(child);
  // Wait until it accepts connections.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      let log = '';
      try {
        log = readFileSync(path.join(prefix, 'logs/error.log'), 'utf8').slice(-500);
      } catch {
        // no log
      }
      child.kill('SIGKILL');
      throw new Error(`nginx did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    address: `127.0.0.1:${port}`,
    process: child,
    async stop() {
      await tracked.stop('SIGQUIT');
      rmSync(prefix, { recursive: true, force: true });
    },
  };
}
